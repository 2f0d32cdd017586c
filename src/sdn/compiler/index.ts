/** The SDN config compiler: full (compile), per device (diffDevice/applyChange) and incremental (SdnState). */
export { compile } from './compile.js';
export { diffDevice, applyChange } from './diff.js';
export { isEmptyChange, type ChangeOp, type Delta, type DeviceChange, type Downlink, type EdgeChange, type GatewayChange, type HostChange, type VlanAddress, type VlanMap } from './change.js';
export { SdnState } from './state.js';
export { SdnCompileError } from './errors.js';
