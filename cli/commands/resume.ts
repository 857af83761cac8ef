import { vcStateCommand } from './vc-state.js';

export default vcStateCommand('Running', 'resume', 'Resume VirtualClusters (re-placed first if their placement changed)');
