// Apply: three-way merge against the last applied manifest, batched writes, pruning. Shared by
// vcctl (apply, diff) and the GitOps sync.
export { applyObjects, ApplyInterruptedError, refOf } from './apply-objects.js';
export type { ApplyOptions, ApplyResult } from './apply-objects.js';
export { planApply, manifestForApply, ApplyError, LAST_APPLIED_ANNOTATION, APPLIED_BY_ANNOTATION } from './plan-apply.js';
export type { ApplyAction, ApplyPlan } from './plan-apply.js';
export { pruneObjects } from './prune.js';
export type { PruneOptions, PruneResult } from './prune.js';
export { threeWayMerge, canonicalJson } from './three-way-merge.js';
