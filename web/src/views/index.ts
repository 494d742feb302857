// The explorer's views, in the order of the navigation. Each is one file in this folder.
import type { ComponentType } from 'react';
import { PromptView } from './PromptView';
import { SaeView } from './SaeView';

export interface View {
  /** The URL's `view` parameter. */
  id: string;
  title: string;
  component: ComponentType;
}

export const VIEWS: View[] = [
  { id: 'prompt', title: 'Prompt', component: PromptView },
  { id: 'sae', title: 'SAE features', component: SaeView },
];
