// Inter-process lock around one blob's download (io/lock.ts).
//
// Why not Python's `.locks/models--org--name/{etag}.lock`: huggingface_hub flock()s that path as a
// regular file and leaves it behind, and Node has no flock, so sharing the name would make each side
// trip over the other's kind of lock. Sonde's lock is `{etag}.sonde.lock` beside it. Correctness never
// rests on the lock alone: bytes are verified before the atomic rename into blobs/.
export { withLock } from '../lock.js';
