// The explorer's views, in the order of the navigation. Each is one file in this folder.
import type { ComponentType } from 'react';
import { AttentionView } from './AttentionView';
import { LensView } from './LensView';
import { AttributionView } from './AttributionView';
import { DlaView } from './DlaView';
import { PatchingView } from './PatchingView';
import { AttributionGraphView } from './AttributionGraphView';
import { CircuitView } from './CircuitView';
import { JobsView } from './JobsView';
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
  { id: 'attention', title: 'Attention', component: AttentionView },
  { id: 'lens', title: 'Lens', component: LensView },
  { id: 'patching', title: 'Activation patching', component: PatchingView },
  { id: 'attribution', title: 'Attribution patching', component: AttributionView },
  { id: 'dla', title: 'Direct logit attribution', component: DlaView },
  { id: 'circuit', title: 'Circuit', component: CircuitView },
  { id: 'attribution-graph', title: 'Attribution graph', component: AttributionGraphView },
  { id: 'jobs', title: 'Jobs', component: JobsView },
  { id: 'sae', title: 'SAE features', component: SaeView },
];
