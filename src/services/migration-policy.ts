/**
 * Live-migration policy per resource type (issue 6 item 2): how long a VM may pause, whether its
 * CPU may be throttled to make it converge, and the go/no-go the controller takes before migrating
 * (DESIGN.md §8: a VM predicted not to converge is reported, not attempted blindly).
 */
import type { MigrationParams } from '../compute/migration.js';
import { DEFAULT_AUTO_CONVERGE, formatRate, predictPrecopy, type PrecopyPrediction } from '../core/precopy.js';
import type { ResourceType } from './vm-types.js';

export interface MigrationPolicyConfig {
  downtimeLimitMs: Record<ResourceType, number>;
  /** Whether auto-converge may throttle the guest's vCPUs when it would not converge otherwise. */
  autoConverge: Record<ResourceType, boolean>;
  maxBandwidthBytes: number;
  completionTimeoutMs: number;
  /** How long calc-dirty-rate measures before the prediction. */
  dirtyRateSampleSeconds: number;
}

export const DEFAULT_MIGRATION_POLICY: Readonly<MigrationPolicyConfig> = Object.freeze({
  // QEMU's default 300 ms; best-effort tenants bought no promise about pauses, so theirs may be longer.
  downtimeLimitMs: { 'best-effort': 500, guaranteed: 300, dedicated: 300 },
  // Throttling steals the CPU a guaranteed or dedicated VM was promised (issue 6: "not for guaranteed VMs by default").
  autoConverge: { 'best-effort': true, guaranteed: false, dedicated: false },
  maxBandwidthBytes: 2 ** 30,
  completionTimeoutMs: 10 * 60_000,
  dirtyRateSampleSeconds: 1,
});

/** The parameters a VM of this type migrates with; `autoConverge` here says whether it is allowed. */
export function migrationParams(resourceType: ResourceType, cfg: MigrationPolicyConfig, overrides: Partial<MigrationParams> = {}): MigrationParams {
  const p: MigrationParams = {
    downtimeLimitMs: cfg.downtimeLimitMs[resourceType], maxBandwidthBytes: cfg.maxBandwidthBytes,
    autoConverge: cfg.autoConverge[resourceType], completionTimeoutMs: cfg.completionTimeoutMs, ...overrides,
  };
  for (const k of ['downtimeLimitMs', 'maxBandwidthBytes', 'completionTimeoutMs'] as const) {
    if (!(Number.isFinite(p[k]) && p[k] > 0)) throw new RangeError(`migration policy: ${k} must be a positive finite number, not ${p[k]}`);
  }
  return p;
}

export interface MigrationDecision {
  go: boolean;
  /** What to migrate with: `autoConverge` is on only when the VM needs it to converge. */
  params: MigrationParams;
  /** The prediction the decision rests on (with auto-converge when that was needed or tried). */
  prediction: PrecopyPrediction;
  reason: string;
}

export interface MigrationCandidate { resourceType: ResourceType; memoryBytes: number; dirtyRateBytes: number }

/** Predicts without auto-converge, then with it where the type allows, and says why not when neither converges in time. */
export function decideMigration(vm: MigrationCandidate, cfg: MigrationPolicyConfig, overrides: Partial<MigrationParams> = {}): MigrationDecision {
  const allowed = migrationParams(vm.resourceType, cfg, overrides);
  const predict = (autoConverge: boolean) => predictPrecopy({
    memoryBytes: vm.memoryBytes, dirtyRateBytes: vm.dirtyRateBytes, bandwidthBytes: allowed.maxBandwidthBytes,
    downtimeLimitMs: allowed.downtimeLimitMs, autoConverge: autoConverge ? DEFAULT_AUTO_CONVERGE : null,
  });
  const plain = predict(false);
  const useAc = !plain.converges && allowed.autoConverge;
  const prediction = useAc ? predict(true) : plain;
  const params = { ...allowed, autoConverge: useAc };
  if (!prediction.converges) {
    const why = useAc ? `predicted not to converge even with auto-converge: ${prediction.reason}`
      : `predicted not to converge: ${plain.reason}; auto-converge not allowed for ${vm.resourceType} VMs`;
    return { go: false, params, prediction, reason: `${why} — ask the owner to stop it before maintenance` };
  }
  if (prediction.totalMs > allowed.completionTimeoutMs) {
    return {
      go: false, params, prediction,
      reason: `predicted to take ${(prediction.totalMs / 1000).toFixed(0)} s at ${formatRate(allowed.maxBandwidthBytes)}, ` +
        `over the ${(allowed.completionTimeoutMs / 1000).toFixed(0)} s completion timeout`,
    };
  }
  return { go: true, params, prediction, reason: useAc ? `only with auto-converge: ${prediction.reason}` : prediction.reason };
}
