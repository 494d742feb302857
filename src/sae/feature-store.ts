// A corpus-wide scan of an SAE's latents, kept in a DuckDB file so that dashboards (top contexts,
// histograms, density tables) are queries rather than recomputation. Async, unlike the rest of Sonde,
// because @duckdb/node-api is.
//
// Schema (one file):
//   meta(format, version, sae, sae_fingerprint, hook, hook_out, d_sae, model, corpus, corpus_fingerprint,
//        ctx, max_tokens, bos_excluded, sequences, tokens_scanned, created, extra)     one row
//   tokens(seq INTEGER, pos INTEGER, token INTEGER, text VARCHAR)      every position, BOS included
//   acts(feature INTEGER, seq INTEGER, pos INTEGER, value FLOAT)       every nonzero latent activation at a
//                                                                      counted position, sorted by feature
//   features(feature INTEGER, n_active INTEGER, density DOUBLE, max_act FLOAT, mean_act FLOAT)
//                                                                      one row per latent, dead ones too
// density = n_active / tokens_scanned; mean_act is the mean over the tokens where the latent is active.
import fs from 'node:fs';
import type { DuckDBAppender, DuckDBConnection, DuckDBInstance, DuckDBType } from '@duckdb/node-api';
import { SaeError } from './config.js';
import { tempSibling, trackLeftover } from '../io/leftovers.js';

type DuckDB = typeof import('@duckdb/node-api');
let duckdb: Promise<DuckDB> | null = null;
/** DuckDB's native library (70 MB) loads on first use, not when Sonde is imported. */
function loadDuckDB(): Promise<DuckDB> {
  return (duckdb ??= import('@duckdb/node-api'));
}

export const FEATURE_STORE_FORMAT = 'sonde-feature-store';
export const FEATURE_STORE_VERSION = 1;

/** What a store was made from; compared before a store is reused. */
export interface FeatureStoreMeta {
  /** The SAE's folder (or a label for an SAE built in memory). */
  sae: string;
  /** Hash of the SAE's config and parameters. */
  saeFingerprint: string;
  hook: string;
  /** Transcoders: the hook the SAE writes. */
  hookOut: string | null;
  dSae: number;
  /** The model's source folder. */
  model: string;
  /** The corpus file (or a label). */
  corpus: string;
  /** Hash of the texts scanned. */
  corpusFingerprint: string;
  /** Tokens per context, BOS included. */
  ctx: number;
  /** The --tokens limit, null for the whole corpus. */
  maxTokens: number | null;
  /** Whether position 0 (BOS) of each context is left out of the activations and statistics. */
  bosExcluded: boolean;
  /** Anything else worth recording (JSON). */
  extra?: Record<string, unknown>;
}

export interface FeatureStoreInfo extends FeatureStoreMeta {
  sequences: number;
  /** Positions counted in the statistics (BOS excluded). */
  tokensScanned: number;
  /** ISO time the store was written (UTC). */
  created: string;
}

export interface FeatureStats {
  feature: number;
  /** Counted tokens on which the latent is nonzero. */
  nActive: number;
  /** nActive / tokensScanned. */
  density: number;
  maxAct: number;
  /** Mean activation over the tokens where it is active (0 for a dead latent). */
  meanAct: number;
}

/** How a latent fires on one vocabulary token. */
export interface TokenStat {
  id: number;
  text: string;
  /** Occurrences on which the latent is active. */
  count: number;
  maxAct: number;
  meanAct: number;
}

export interface FeatureSummary extends FeatureStats {
  tokensScanned: number;
  /** Tokens on which it fires hardest (by max activation, then count). */
  topTokens: TokenStat[];
}

export interface ContextToken {
  pos: number;
  id: number;
  text: string;
  /** This latent's activation there (0 where it is not active, and at BOS). */
  act: number;
}

export interface FeatureContext {
  /** 1 = the highest activation. */
  rank: number;
  seq: number;
  pos: number;
  value: number;
  /** Positions [pos - window, pos + window] of that context (clipped to it). */
  tokens: ContextToken[];
  /** Index in `tokens` of the activating position. */
  center: number;
}

/** Examples of one activation interval (SAE-Vis's quantile groups). */
export interface QuantileGroup {
  /** The interval (lo, hi] of activation values. */
  lo: number;
  hi: number;
  /** Activations in it. */
  count: number;
  examples: FeatureContext[];
}

export interface CorrelatedFeature {
  feature: number;
  /** Pearson correlation of the two latents' activations over the scanned tokens (zeros included). */
  correlation: number;
  /** Tokens where both fire, and that over the tokens where either fires. */
  coActive: number;
  jaccard: number;
}

export interface Histogram {
  /** bins + 1 edges; bin i is [edges[i], edges[i+1]), the last one closed. */
  edges: number[];
  counts: number[];
}

export interface ActivationHistogram extends Histogram {
  feature: number;
  /** Activations counted in the bins (the nonzero ones). */
  nonzero: number;
  /** Counted tokens where the latent is zero (not in the bins). */
  zeros: number;
}

export interface DensityHistogram extends Histogram {
  /** The edges are log10(density) of the live latents. */
  live: number;
  dead: number;
}

export interface ListOptions {
  orderBy?: 'density' | 'max';
  /** Rows returned (default all). */
  limit?: number;
  offset?: number;
  /** Top tokens per latent (default 3). */
  topTokens?: number;
  /** Leave out latents that never fire. */
  liveOnly?: boolean;
}

type Row = Record<string, unknown>;

const num = (v: unknown): number => (typeof v === 'bigint' ? Number(v) : (v as number));

/** A store open for queries (read-only). */
export class FeatureStore {
  private constructor(
    readonly path: string,
    private readonly instance: DuckDBInstance,
    private readonly conn: DuckDBConnection,
    readonly info: FeatureStoreInfo,
  ) {}

  /** Starts writing a new store; nothing appears at `path` until {@link FeatureStoreWriter.finish}. */
  static async create(path: string, meta: FeatureStoreMeta): Promise<FeatureStoreWriter> {
    return FeatureStoreWriter.start(path, meta);
  }

  /** Opens a finished store read-only; SaeError when it is missing or not a feature store. */
  static async open(path: string): Promise<FeatureStore> {
    if (!fs.existsSync(path)) throw new SaeError(`feature store ${path} does not exist`);
    const { DuckDBInstance } = await loadDuckDB();
    let instance: DuckDBInstance;
    try {
      instance = await DuckDBInstance.create(path, { access_mode: 'READ_ONLY' });
    } catch (e) {
      throw new SaeError(`cannot open feature store ${path}: ${(e as Error).message}`);
    }
    const conn = await instance.connect();
    try {
      const rows = await query(conn, 'SELECT *, CAST(created AS VARCHAR) AS created_s FROM meta');
      const r = rows[0];
      if (!r || r.format !== FEATURE_STORE_FORMAT) throw new Error('no meta row');
      if (num(r.version) !== FEATURE_STORE_VERSION)
        throw new SaeError(
          `feature store ${path} has format version ${num(r.version)}; this Sonde reads version ${FEATURE_STORE_VERSION} (rescan it)`,
        );
      return new FeatureStore(path, instance, conn, infoFromRow(r));
    } catch (e) {
      conn.closeSync();
      instance.closeSync();
      if (e instanceof SaeError) throw e;
      throw new SaeError(`${path} is not a Sonde feature store (${(e as Error).message})`);
    }
  }

  get dSae(): number {
    return this.info.dSae;
  }

  close(): void {
    this.conn.closeSync();
    this.instance.closeSync();
  }

  /** Runs any SQL on the store (read-only) and returns rows as plain JS objects. */
  async sql(text: string): Promise<Row[]> {
    return query(this.conn, text);
  }

  private check(feature: number): number {
    if (!Number.isInteger(feature) || feature < 0 || feature >= this.info.dSae)
      throw new SaeError(`feature ${feature} is outside this SAE's latents [0, ${this.info.dSae})`);
    return feature;
  }

  async featureStats(feature: number): Promise<FeatureStats> {
    const f = this.check(feature);
    const rows = await query(this.conn, `SELECT * FROM features WHERE feature = ${f}`);
    return statsFromRow(rows[0]!);
  }

  async featureSummary(feature: number, topTokens = 10): Promise<FeatureSummary> {
    const stats = await this.featureStats(feature);
    const tokens = await this.topTokens([stats.feature], topTokens);
    return { ...stats, tokensScanned: this.info.tokensScanned, topTokens: tokens.get(stats.feature) ?? [] };
  }

  /** Per latent, the k tokens with the highest max activation (then the most occurrences). */
  async topTokens(features: number[], k: number): Promise<Map<number, TokenStat[]>> {
    const out = new Map<number, TokenStat[]>(features.map((f) => [this.check(f), []]));
    if (features.length === 0 || k < 1) return out;
    const rows = await query(
      this.conn,
      `WITH per_token AS (
         SELECT a.feature, t.token, any_value(t.text) AS text, count(*) AS n, max(a.value) AS mx,
           avg(a.value) AS mean
         FROM acts a JOIN tokens t ON t.seq = a.seq AND t.pos = a.pos
         WHERE a.feature IN (${features.join(', ')})
         GROUP BY a.feature, t.token),
       ranked AS (
         SELECT *, row_number() OVER (PARTITION BY feature ORDER BY mx DESC, n DESC, token) AS r
         FROM per_token)
       SELECT r.feature, r.token, r.text, CAST(r.n AS INTEGER) AS n, r.mx, r.mean
       FROM ranked r WHERE r.r <= ${Math.floor(k)} ORDER BY r.feature, r.r`,
    );
    for (const r of rows)
      out.get(num(r.feature))!.push({
        id: num(r.token),
        text: r.text as string,
        count: num(r.n),
        maxAct: num(r.mx),
        meanAct: num(r.mean),
      });
    return out;
  }

  /**
   * The n highest activations of a latent (ties: earlier sequence and position first), each with the
   * tokens in [pos - window, pos + window] of its context and the latent's activation on each.
   */
  async topContexts(feature: number, n = 10, window = 8): Promise<FeatureContext[]> {
    const f = this.check(feature);
    const lim = nonNegInt(n, 'n');
    if (lim === 0) return [];
    return this.contextsAround(
      f,
      `SELECT seq, pos, value, row_number() OVER (ORDER BY value DESC, seq, pos) AS rank
       FROM acts WHERE feature = ${f}
       ORDER BY value DESC, seq, pos LIMIT ${lim}`,
      window,
    );
  }

  /**
   * SAE-Vis's activation-quantile groups: (0, max] cut into `groups` equal-width intervals, and from each
   * up to `perGroup` activations spread evenly over its ranks (highest interval first), each with its
   * context as {@link topContexts} gives it. A group's `rank` numbers its examples from 1.
   */
  async quantileContexts(feature: number, groups = 5, perGroup = 5, window = 8): Promise<QuantileGroup[]> {
    const f = this.check(feature);
    const ng = nonNegInt(groups, 'groups');
    const per = nonNegInt(perGroup, 'perGroup');
    const { maxAct, nActive } = await this.featureStats(f);
    if (ng === 0 || nActive === 0 || !(maxAct > 0)) return [];
    const lo = (g: number) => (maxAct * g) / ng;
    // Group g holds (lo(g), lo(g+1)]; g = ng - 1 is the top interval.
    const groupOf = `least(CAST(ceil(value / ${maxAct} * ${ng}) AS INTEGER) - 1, ${ng - 1})`;
    const [counts, picked] = await Promise.all([
      query(
        this.conn,
        `SELECT ${groupOf} AS g, CAST(count(*) AS INTEGER) AS n FROM acts WHERE feature = ${f} AND value > 0 GROUP BY g`,
      ),
      per === 0
        ? Promise.resolve([])
        : this.contextsAround(
            f,
            `WITH ranked AS (
               SELECT seq, pos, value, ${groupOf} AS g,
                 row_number() OVER (PARTITION BY ${groupOf} ORDER BY value DESC, seq, pos) - 1 AS r,
                 count(*) OVER (PARTITION BY ${groupOf}) AS n
               FROM acts WHERE feature = ${f} AND value > 0)
             SELECT seq, pos, value, g * 1000000 + row_number() OVER (PARTITION BY g ORDER BY r) AS rank
             FROM ranked
             -- rank r is picked when r = floor(i * n / per) for some i < per (evenly spread ranks)
             WHERE (r * ${per} + n - 1) // n < ${per} AND ((r * ${per} + n - 1) // n) * n // ${per} = r`,
            window,
          ),
    ]);
    const size = new Map(counts.map((r) => [num(r.g), num(r.n)]));
    const out: QuantileGroup[] = [];
    for (let g = ng - 1; g >= 0; g--) {
      const examples = picked
        .filter((c) => Math.floor(c.rank / 1_000_000) === g)
        .map((c) => ({ ...c, rank: c.rank % 1_000_000 }));
      out.push({ lo: lo(g), hi: g === ng - 1 ? maxAct : lo(g + 1), count: size.get(g) ?? 0, examples });
    }
    return out;
  }

  /** Contexts of the activations `selected` lists (columns seq, pos, value, rank), in rank order. */
  private async contextsAround(f: number, selected: string, window: number): Promise<FeatureContext[]> {
    const w = nonNegInt(window, 'window');
    const rows = await query(
      this.conn,
      `WITH top AS (${selected})
       SELECT CAST(top.rank AS BIGINT) AS rank, top.seq, top.pos AS center, top.value AS top_value,
         t.pos, t.token, t.text, coalesce(a.value, 0) AS act
       FROM top
       JOIN tokens t ON t.seq = top.seq AND t.pos BETWEEN top.pos - ${w} AND top.pos + ${w}
       LEFT JOIN acts a ON a.feature = ${f} AND a.seq = t.seq AND a.pos = t.pos
       ORDER BY top.rank, t.pos`,
    );
    const out: FeatureContext[] = [];
    for (const r of rows) {
      const rank = num(r.rank);
      let c = out[out.length - 1];
      if (!c || c.rank !== rank) {
        c = { rank, seq: num(r.seq), pos: num(r.center), value: num(r.top_value), tokens: [], center: 0 };
        out.push(c);
      }
      const pos = num(r.pos);
      if (pos === c.pos) c.center = c.tokens.length;
      c.tokens.push({ pos, id: num(r.token), text: r.text as string, act: num(r.act) });
    }
    return out;
  }

  /**
   * The k latents whose activations correlate most with this one's over the scanned tokens (Pearson,
   * zeros included; only latents that fire together with it at least once), with how often they co-fire.
   */
  async correlatedFeatures(feature: number, k = 10): Promise<CorrelatedFeature[]> {
    const f = this.check(feature);
    const lim = nonNegInt(k, 'k');
    if (lim === 0) return [];
    const N = Math.max(1, this.info.tokensScanned);
    const rows = await query(
      this.conn,
      `WITH mine AS (SELECT seq, pos, value FROM acts WHERE feature = ${f}),
       co AS (
         SELECT a.feature, sum(CAST(a.value AS DOUBLE) * m.value) AS sxy, count(*) AS both_n
         FROM acts a JOIN mine m ON a.seq = m.seq AND a.pos = m.pos
         WHERE a.feature <> ${f} GROUP BY a.feature),
       st AS (
         SELECT feature, sum(CAST(value AS DOUBLE)) AS sx, sum(CAST(value AS DOUBLE) * value) AS sxx,
           count(*) AS n
         FROM acts WHERE feature IN (SELECT feature FROM co) OR feature = ${f} GROUP BY feature),
       me AS (SELECT sx, sxx, n FROM st WHERE feature = ${f})
       SELECT co.feature, CAST(co.both_n AS INTEGER) AS both_n, CAST(st.n AS INTEGER) AS n,
         (${N} * co.sxy - st.sx * me.sx)
           / sqrt(greatest((${N} * st.sxx - st.sx * st.sx) * (${N} * me.sxx - me.sx * me.sx), 1e-300)) AS r
       FROM co JOIN st ON st.feature = co.feature, me
       ORDER BY r DESC, co.feature LIMIT ${lim}`,
    );
    const mine = (await this.featureStats(f)).nActive;
    return rows.map((r) => {
      const both = num(r.both_n);
      return {
        feature: num(r.feature),
        correlation: num(r.r),
        coActive: both,
        jaccard: both / (mine + num(r.n) - both),
      };
    });
  }

  /** Equal-width histogram of a latent's nonzero activations over [min(0, smallest), max]. */
  async histogram(feature: number, bins = 20): Promise<ActivationHistogram> {
    const f = this.check(feature);
    const nb = nonNegInt(bins, 'bins');
    if (nb < 1) throw new SaeError('histogram: bins must be at least 1');
    const [range] = await query(
      this.conn,
      `SELECT CAST(count(*) AS INTEGER) AS n, min(value) AS lo, max(value) AS hi FROM acts WHERE feature = ${f}`,
    );
    const nonzero = num(range!.n);
    const zeros = this.info.tokensScanned - nonzero;
    if (nonzero === 0)
      return { feature: f, edges: edgesOf(0, 0, nb), counts: new Array<number>(nb).fill(0), nonzero, zeros };
    const lo = Math.min(0, num(range!.lo));
    const hi = num(range!.hi);
    const counts = await this.binCounts(
      `FROM acts WHERE feature = ${f}`,
      'CAST(value AS DOUBLE)',
      lo,
      hi,
      nb,
    );
    return { feature: f, edges: edgesOf(lo, hi, nb), counts, nonzero, zeros };
  }

  /** Histogram of log10(density) over the live latents, and the number of dead ones. */
  async densityHistogram(bins = 20): Promise<DensityHistogram> {
    const nb = nonNegInt(bins, 'bins');
    if (nb < 1) throw new SaeError('densityHistogram: bins must be at least 1');
    const [r] = await query(
      this.conn,
      `SELECT CAST(count(*) FILTER (WHERE n_active > 0) AS INTEGER) AS live,
         CAST(count(*) FILTER (WHERE n_active = 0) AS INTEGER) AS dead,
         min(CASE WHEN density > 0 THEN log10(density) END) AS lo,
         max(CASE WHEN density > 0 THEN log10(density) END) AS hi
       FROM features`,
    );
    const live = num(r!.live);
    const dead = num(r!.dead);
    if (live === 0) return { edges: edgesOf(0, 0, nb), counts: new Array<number>(nb).fill(0), live, dead };
    const lo = num(r!.lo);
    const hi = num(r!.hi);
    const counts = await this.binCounts(
      'FROM features WHERE density > 0',
      'log10(CASE WHEN density > 0 THEN density ELSE 1 END)',
      lo,
      hi,
      nb,
    );
    return { edges: edgesOf(lo, hi, nb), counts, live, dead };
  }

  private async binCounts(from: string, expr: string, lo: number, hi: number, nb: number): Promise<number[]> {
    const width = hi - lo || 1;
    const rows = await query(
      this.conn,
      `SELECT least(greatest(CAST(floor((${expr} - (${lo})) / (${width}) * ${nb}) AS INTEGER), 0), ${nb - 1}) AS b,
         CAST(count(*) AS INTEGER) AS n ${from} GROUP BY b`,
    );
    const counts = new Array<number>(nb).fill(0);
    for (const row of rows) counts[num(row.b)] = num(row.n);
    return counts;
  }

  /** Latents ordered by density or max activation (descending; ties by index), with a few top tokens. */
  async listFeatures(opts: ListOptions = {}): Promise<(FeatureStats & { topTokens: TokenStat[] })[]> {
    const order = opts.orderBy ?? 'density';
    if (order !== 'density' && order !== 'max')
      throw new SaeError(`listFeatures: orderBy must be 'density' or 'max', got ${JSON.stringify(order)}`);
    const col = order === 'density' ? 'density' : 'max_act';
    const limit = opts.limit === undefined ? '' : `LIMIT ${nonNegInt(opts.limit, 'limit')}`;
    const offset = opts.offset ? `OFFSET ${nonNegInt(opts.offset, 'offset')}` : '';
    const where = opts.liveOnly ? 'WHERE n_active > 0' : '';
    const rows = await query(
      this.conn,
      `SELECT * FROM features ${where} ORDER BY ${col} DESC, feature ${limit} ${offset}`,
    );
    const stats = rows.map(statsFromRow);
    const tokens = await this.topTokens(
      stats.filter((s) => s.nActive > 0).map((s) => s.feature),
      opts.topTokens ?? 3,
    );
    return stats.map((s) => ({ ...s, topTokens: tokens.get(s.feature) ?? [] }));
  }
}

const CHUNK_ROWS = 2048; // DuckDB's vector size: one data chunk per append

/** Column buffers flushed to an appender as data chunks. */
class ChunkBuffer {
  private cols: (number | string)[][];
  private n = 0;
  constructor(
    private readonly duck: DuckDB,
    private readonly appender: DuckDBAppender,
    private readonly types: DuckDBType[],
  ) {
    this.cols = types.map(() => []);
  }
  push(...values: (number | string)[]): void {
    for (let i = 0; i < values.length; i++) this.cols[i]!.push(values[i]!);
    if (++this.n === CHUNK_ROWS) this.flush();
  }
  flush(): void {
    if (this.n === 0) return;
    const chunk = this.duck.DuckDBDataChunk.create(this.types, this.n);
    chunk.setColumns(this.cols);
    this.appender.appendDataChunk(chunk);
    this.cols = this.types.map(() => []);
    this.n = 0;
  }
  close(): void {
    this.flush();
    this.appender.closeSync();
  }
}

/** Writes a store into a temp file next to `path`; finish() moves it into place. */
export class FeatureStoreWriter {
  private done = false;
  private sequences = new Set<number>();
  private constructor(
    readonly path: string,
    private readonly tmp: string,
    private readonly meta: FeatureStoreMeta,
    private readonly instance: DuckDBInstance,
    private readonly conn: DuckDBConnection,
    private readonly tokens: ChunkBuffer,
    private readonly acts: ChunkBuffer,
  ) {}

  static async start(path: string, meta: FeatureStoreMeta): Promise<FeatureStoreWriter> {
    if (!Number.isInteger(meta.dSae) || meta.dSae < 1)
      throw new SaeError(`feature store: d_sae must be a positive integer, got ${meta.dSae}`);
    const tmp = tempSibling(path);
    // DuckDB writes a write-ahead log beside the file: a killed scan leaves both.
    trackLeftover(`${tmp}.wal`);
    removeDb(tmp);
    const duck = await loadDuckDB();
    const { INTEGER, FLOAT, VARCHAR } = duck;
    let instance: DuckDBInstance;
    try {
      instance = await duck.DuckDBInstance.create(tmp);
    } catch (e) {
      throw new SaeError(`cannot create feature store ${path}: ${(e as Error).message}`);
    }
    const conn = await instance.connect();
    await conn.run(`CREATE TABLE tokens(seq INTEGER, pos INTEGER, token INTEGER, text VARCHAR)`);
    await conn.run(`CREATE TABLE acts_raw(feature INTEGER, seq INTEGER, pos INTEGER, value FLOAT)`);
    const tokens = new ChunkBuffer(duck, await conn.createAppender('tokens'), [
      INTEGER,
      INTEGER,
      INTEGER,
      VARCHAR,
    ]);
    const acts = new ChunkBuffer(duck, await conn.createAppender('acts_raw'), [
      INTEGER,
      INTEGER,
      INTEGER,
      FLOAT,
    ]);
    return new FeatureStoreWriter(path, tmp, meta, instance, conn, tokens, acts);
  }

  private live(): void {
    if (this.done) throw new SaeError('feature store writer is already finished or aborted');
  }

  /** One context's tokens (positions 0..). */
  appendTokens(seq: number, ids: ArrayLike<number>, texts: readonly string[]): void {
    this.live();
    this.sequences.add(seq);
    for (let p = 0; p < ids.length; p++) this.tokens.push(seq, p, ids[p]!, texts[p]!);
  }

  /** One nonzero activation. */
  appendAct(feature: number, seq: number, pos: number, value: number): void {
    if (this.done) this.live();
    this.acts.push(feature, seq, pos, value);
  }

  /**
   * Builds the features table, sorts the activations by latent, writes the file and renames it to
   * `path` (replacing any store there); returns it open for queries.
   */
  async finish(tokensScanned: number): Promise<FeatureStore> {
    this.live();
    this.done = true;
    try {
      this.tokens.close();
      this.acts.close();
      const m = this.meta;
      const T = Math.max(1, tokensScanned);
      await this.conn.run(
        `CREATE TABLE acts AS SELECT * FROM acts_raw ORDER BY feature, value DESC, seq, pos`,
      );
      await this.conn.run(`DROP TABLE acts_raw`);
      await this.conn.run(
        `CREATE TABLE features AS
         SELECT CAST(r.range AS INTEGER) AS feature, CAST(coalesce(s.n, 0) AS INTEGER) AS n_active,
           coalesce(s.n, 0) / ${T}::DOUBLE AS density, CAST(coalesce(s.mx, 0) AS FLOAT) AS max_act,
           CAST(coalesce(s.mean, 0) AS FLOAT) AS mean_act
         FROM range(${m.dSae}) r
         LEFT JOIN (SELECT feature, count(*) AS n, max(value) AS mx, avg(value) AS mean FROM acts GROUP BY feature) s
           ON s.feature = r.range
         ORDER BY feature`,
      );
      const bad = await query(
        this.conn,
        `SELECT count(*) AS n FROM acts WHERE feature < 0 OR feature >= ${m.dSae}`,
      );
      if (num(bad[0]!.n) > 0)
        throw new SaeError(`feature store: activations of latents outside [0, ${m.dSae})`);
      await this.conn.run(
        `CREATE TABLE meta(format VARCHAR, version INTEGER, sae VARCHAR, sae_fingerprint VARCHAR, hook VARCHAR,
           hook_out VARCHAR, d_sae INTEGER, model VARCHAR, corpus VARCHAR, corpus_fingerprint VARCHAR,
           ctx INTEGER, max_tokens BIGINT, bos_excluded BOOLEAN, sequences INTEGER, tokens_scanned BIGINT,
           created TIMESTAMP, extra VARCHAR)`,
      );
      const created = new Date().toISOString();
      await this.conn.run(
        `INSERT INTO meta VALUES ($format, ${FEATURE_STORE_VERSION}, $sae, $saeFp, $hook, $hookOut, ${m.dSae},
           $model, $corpus, $corpusFp, ${nonNegInt(m.ctx, 'ctx')}, ${m.maxTokens === null ? 'NULL' : nonNegInt(m.maxTokens, 'maxTokens')},
           ${m.bosExcluded}, ${this.sequences.size}, ${nonNegInt(tokensScanned, 'tokensScanned')},
           CAST($created AS TIMESTAMP), $extra)`,
        {
          format: FEATURE_STORE_FORMAT,
          sae: m.sae,
          saeFp: m.saeFingerprint,
          hook: m.hook,
          hookOut: m.hookOut,
          model: m.model,
          corpus: m.corpus,
          corpusFp: m.corpusFingerprint,
          created: created.replace('T', ' ').replace('Z', ''),
          extra: JSON.stringify(m.extra ?? {}),
        },
      );
      await this.conn.run('CHECKPOINT');
      this.conn.closeSync();
      this.instance.closeSync();
      removeDb(this.path);
      fs.renameSync(this.tmp, this.path);
    } catch (e) {
      this.closeQuietly();
      removeDb(this.tmp);
      throw e;
    }
    return FeatureStore.open(this.path);
  }

  /** Drops everything written; `path` is left as it was. */
  abort(): void {
    if (this.done) return;
    this.done = true;
    this.closeQuietly();
    removeDb(this.tmp);
  }

  private closeQuietly(): void {
    for (const f of [() => this.conn.closeSync(), () => this.instance.closeSync()]) {
      try {
        f();
      } catch {
        // already closed
      }
    }
  }
}

async function query(conn: DuckDBConnection, sql: string): Promise<Row[]> {
  const reader = await conn.runAndReadAll(sql);
  return reader.getRowObjectsJS() as Row[];
}

/** A DuckDB file and its side files (write-ahead log, spill directory). */
function removeDb(file: string): void {
  for (const f of [file, `${file}.wal`]) fs.rmSync(f, { force: true });
  fs.rmSync(`${file}.tmp`, { force: true, recursive: true });
}

function nonNegInt(v: number, name: string): number {
  if (!Number.isSafeInteger(v) || v < 0) throw new SaeError(`${name} must be an integer >= 0, got ${v}`);
  return v;
}

/** bins + 1 equal-width edges over [lo, hi] (the last one exactly hi). */
export function edgesOf(lo: number, hi: number, bins: number): number[] {
  const width = hi - lo;
  return Array.from({ length: bins + 1 }, (_, i) => (i === bins ? hi : lo + (width * i) / bins));
}

function statsFromRow(r: Row): FeatureStats {
  return {
    feature: num(r.feature),
    nActive: num(r.n_active),
    density: num(r.density),
    maxAct: num(r.max_act),
    meanAct: num(r.mean_act),
  };
}

function infoFromRow(r: Row): FeatureStoreInfo {
  return {
    sae: r.sae as string,
    saeFingerprint: r.sae_fingerprint as string,
    hook: r.hook as string,
    hookOut: (r.hook_out as string | null) ?? null,
    dSae: num(r.d_sae),
    model: r.model as string,
    corpus: r.corpus as string,
    corpusFingerprint: r.corpus_fingerprint as string,
    ctx: num(r.ctx),
    maxTokens: r.max_tokens === null ? null : num(r.max_tokens),
    bosExcluded: r.bos_excluded as boolean,
    extra: JSON.parse((r.extra as string | null) ?? '{}') as Record<string, unknown>,
    sequences: num(r.sequences),
    tokensScanned: num(r.tokens_scanned),
    created: `${(r.created_s as string).replace(' ', 'T')}Z`,
  };
}
