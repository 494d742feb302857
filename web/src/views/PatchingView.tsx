// Activation patching (what `sonde patch` shows): which activations carry the difference between a clean
// and a corrupt prompt, as a layer × position (or head) heatmap.
import { SweepPanel } from '../components/SweepPanel';

export function PatchingView() {
  return <SweepPanel kind="patching" method="Activation patching" />;
}
