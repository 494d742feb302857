import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { removeLeftoversOf } from '../../src/io/leftovers.js';
import { LockedError, tryLock } from '../../src/io/lock.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sonde-lock-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('tryLock', () => {
  it('refuses while a live process holds the lock, takes over a dead one, and removes it on release', () => {
    const p = path.join(tmp, 'out.lock');
    const lock = tryLock(p, "--out 'out'");
    expect(fs.readFileSync(p, 'utf8')).toBe(`${process.pid} ${os.hostname()}\n`);
    expect(() => tryLock(p, "--out 'out'")).toThrow(LockedError);
    expect(() => tryLock(p, "--out 'out'")).toThrow(
      `--out 'out' is in use by another sonde process (pid ${process.pid}; lock ${p})`,
    );
    lock.release();
    expect(fs.existsSync(p)).toBe(false);
    fs.writeFileSync(p, `999999999 ${os.hostname()}\n`); // a holder that died without releasing
    const again = tryLock(p, 'x');
    expect(fs.readFileSync(p, 'utf8').split(' ')[0]).toBe(String(process.pid));
    again.release();
  });

  it("a dead process's leftovers are removed, but not a lock another process has taken over", () => {
    const dead = 999999998;
    const temp = path.join(tmp, 'result.tmp-x');
    const lock = path.join(tmp, 'taken.lock');
    fs.mkdirSync(temp);
    fs.writeFileSync(lock, `${process.pid} ${os.hostname()}\n`);
    fs.writeFileSync(path.join(os.tmpdir(), `sonde-leftovers-${dead}`), `${temp}\n${lock}\n`);
    removeLeftoversOf(dead);
    expect(fs.existsSync(temp)).toBe(false);
    expect(fs.existsSync(lock)).toBe(true);
    expect(fs.existsSync(path.join(os.tmpdir(), `sonde-leftovers-${dead}`))).toBe(false);
  });
});
