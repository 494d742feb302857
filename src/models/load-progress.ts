import { WrappedSource, type WeightSource } from './weights.js';

/** One step of a load, for a progress bar: counts cover every tensor in the checkpoint. */
export interface LoadProgress {
  /** Checkpoint tensors read so far (each counted once). */
  tensorsDone: number;
  /** Tensors in the checkpoint. */
  tensorsTotal: number;
  /** Bytes on disk of the tensors read so far. */
  bytesDone: number;
  /** Bytes on disk of every tensor in the checkpoint. */
  bytesTotal: number;
  /**
   * The tensor just read; null in the last event, sent only when the architecture left some tensors
   * unread (a tied lm_head, rotary buffers), which brings the counts to their totals.
   */
  name: string | null;
}

/** What the wrapper needs from a checkpoint: the read side plus each tensor's size on disk. */
export interface SizedWeightSource extends WeightSource {
  info(name: string): { shape: number[]; byteLength: number };
}

/**
 * Wraps a checkpoint so that every tensor read reports progress; architectures see a plain WeightSource.
 * The callback runs after each read, so a throw from it stops the load.
 */
export class ProgressSource extends WrappedSource<SizedWeightSource> {
  private readonly seen = new Set<string>();
  private readonly tensorsTotal: number;
  private readonly bytesTotal: number;
  private bytesDone = 0;

  constructor(
    inner: SizedWeightSource,
    private readonly onProgress: (p: LoadProgress) => void,
  ) {
    super(inner);
    const names = inner.names();
    this.tensorsTotal = names.length;
    this.bytesTotal = names.reduce((sum, n) => sum + inner.info(n).byteLength, 0);
  }

  override readFloat32(name: string): Float32Array {
    const data = this.inner.readFloat32(name);
    if (!this.seen.has(name)) {
      this.seen.add(name);
      this.bytesDone += this.inner.info(name).byteLength;
    }
    this.emit(name);
    return data;
  }

  /** Sends the closing event when some tensors were never read. */
  finish(): void {
    if (this.seen.size === this.tensorsTotal) return;
    this.bytesDone = this.bytesTotal;
    this.onProgress({
      tensorsDone: this.tensorsTotal,
      tensorsTotal: this.tensorsTotal,
      bytesDone: this.bytesTotal,
      bytesTotal: this.bytesTotal,
      name: null,
    });
  }

  private emit(name: string): void {
    this.onProgress({
      tensorsDone: this.seen.size,
      tensorsTotal: this.tensorsTotal,
      bytesDone: this.bytesDone,
      bytesTotal: this.bytesTotal,
      name,
    });
  }
}
