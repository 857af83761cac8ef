// vcctl uncordon NODE...: spec.unschedulable = false.
import { cordonCommand } from './cordon-node.js';

export default cordonCommand(false);
