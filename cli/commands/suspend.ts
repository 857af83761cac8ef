import { vcStateCommand } from './vc-state.js';

export default vcStateCommand('Suspended', 'suspend', 'Suspend every VM of VirtualClusters to disk');
