// The explorer's views, in the order of the navigation. Each is one file in this folder.
import type { ComponentType } from 'react';
import { JobsView } from './JobsView';
import { PromptView } from './PromptView';

export interface View {
  /** The URL's `view` parameter. */
  id: string;
  title: string;
  component: ComponentType;
}

export const VIEWS: View[] = [
  { id: 'prompt', title: 'Prompt', component: PromptView },
  { id: 'jobs', title: 'Jobs', component: JobsView },
];
