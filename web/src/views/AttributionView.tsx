// Attribution patching (what `sonde attribute` shows): the first-order estimate of every patch of the
// sweep, optionally beside real activation patching with their correlation.
import { SweepPanel } from '../components/SweepPanel';

export function AttributionView() {
  return <SweepPanel kind="attribution" method="Attribution patching" />;
}
