/**
 * Keeps a volume's write lease: renews every `everyMs` (leaseMs/3 by default). The lease lapses
 * `leaseMs` after the renew that was *sent* last before it succeeded (the controller counts from
 * when it received it, which is later), so when renews keep failing the keeper reports `expired`
 * before another holder could take the lease, and I/O stops until a renew succeeds again. A
 * LeaseLost answer is final: `lost` is reported once and renewing stops.
 */
import { LeaseLost, type MapSource } from './map.js';
import type { NodeLogger } from '../node/log.js';

export interface LeaseEvents {
  /** The lease lapsed here (renews failing) or came back (a renew succeeded). */
  expired(yes: boolean): void;
  /** Another holder took the lease: final. */
  lost(e: LeaseLost): void;
}

export class LeaseKeeper {
  private timer: NodeJS.Timeout | null = null;
  private expiry: NodeJS.Timeout | null = null;
  private stopped = false;
  private failing = false;
  private isExpired = false;

  constructor(
    private readonly map: MapSource,
    private readonly volumeId: string,
    private readonly epoch: number,
    private readonly leaseMs: number,
    private readonly everyMs: number,
    private readonly log: NodeLogger,
    private readonly on: LeaseEvents,
  ) {}

  /** `takenAt`: when the open() that returned the lease was sent. */
  start(takenAt: number): void {
    this.armExpiry(takenAt);
    this.schedule();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.expiry) clearTimeout(this.expiry);
    this.timer = this.expiry = null;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.renew(), this.everyMs);
    this.timer.unref();
  }

  private armExpiry(sentAt: number): void {
    if (this.expiry) clearTimeout(this.expiry);
    this.expiry = setTimeout(() => {
      if (this.stopped || this.isExpired) return;
      this.isExpired = true;
      this.log.warn({ volumeId: this.volumeId, epoch: this.epoch }, 'write lease lapsed (renewals failing): I/O fails until a renewal succeeds');
      this.on.expired(true);
    }, Math.max(0, sentAt + this.leaseMs - Date.now()));
    this.expiry.unref();
  }

  private async renew(): Promise<void> {
    if (this.stopped) return;
    const sentAt = Date.now();
    try {
      await this.map.renew(this.volumeId, this.epoch);
      if (this.stopped) return;
      this.armExpiry(sentAt);
      if (this.failing) this.log.info({ volumeId: this.volumeId }, 'write lease renewed again');
      this.failing = false;
      if (this.isExpired) {
        this.isExpired = false;
        this.on.expired(false);
      }
    } catch (e) {
      if (this.stopped) return;
      if (e instanceof LeaseLost) {
        this.stop();
        this.on.lost(e);
        return;
      }
      if (!this.failing) this.log.warn({ volumeId: this.volumeId, err: (e as Error).message }, 'cannot renew the write lease; retrying');
      this.failing = true;
    }
    this.schedule();
  }
}
