/**
 * Where the S3 store keeps what in its bucket. Files land at `<prefix>/<name>`; the store's own
 * state is under `<prefix>/.ft-partial/`, a first component parseSafeName refuses, so no peer's
 * file can ever be named like it:
 *
 *   .ft-partial/uploads/<id>.json   an unfinished upload's state (UploadState)
 *   .ft-partial/uploads/<id>.tail   the bytes after its last whole part, when it was let go
 *   .ft-partial/leases/<id>         the lease on it (bucket-lease.ts)
 *   .ft-partial/peers/<group>/<id>  an empty marker: whose upload it is, for the per-peer quota
 *   .ft-partial/names/<hex name>    the claim on a name while a commit places it (no-replace)
 */
import { createHash } from 'node:crypto';
import { PARTIAL_DIR } from '../../names/safe-name.js';
import type { S3Location } from './s3-client.js';

export class Layout {
  readonly base: string;
  readonly state: string;

  constructor(readonly location: S3Location) {
    this.base = location.prefix === '' ? '' : `${location.prefix}/`;
    this.state = `${this.base}${PARTIAL_DIR}/`;
  }

  /**
   * An upload's id: who uploads which name (hashed), then of which size, so that one listing
   * finds every size of a name an owner keeps (the orphans a commit deletes).
   */
  static uploadId(owner: string, filename: string, size: number): string {
    return `${Layout.nameOf(owner, filename)}${size}`;
  }

  /** The start of the ids of `owner`'s uploads of `filename`, whatever their size. */
  static nameOf(owner: string, filename: string): string {
    return `${createHash('sha256').update(`${owner}\0${filename}`).digest('hex').slice(0, 40)}-`;
  }

  object(path: string): string {
    return `${this.base}${path}`;
  }

  /** The inbox path of an object key, or undefined for the store's own state and foreign keys. */
  pathOf(key: string): string | undefined {
    if (!key.startsWith(this.base) || key.startsWith(this.state)) return undefined;
    return key.slice(this.base.length);
  }

  get uploads(): string {
    return `${this.state}uploads/`;
  }

  stateOf(id: string): string {
    return `${this.uploads}${id}.json`;
  }

  tailOf(id: string): string {
    return `${this.uploads}${id}.tail`;
  }

  leaseOf(id: string): string {
    return `${this.state}leases/${id}`;
  }

  peerDir(group: string): string {
    return `${this.state}peers/${Buffer.from(group).toString('hex')}/`;
  }

  peerMarker(group: string, id: string): string {
    return `${this.peerDir(group)}${id}`;
  }

  nameClaim(path: string): string {
    // Hex keeps any name (up to 4096 bytes of UTF-8) a flat key; long ones are hashed to fit S3's 1024.
    const hex = Buffer.from(path).toString('hex');
    return `${this.state}names/${hex.length <= 400 ? hex : `h-${createHash('sha256').update(path).digest('hex')}`}`;
  }
}
