// vcctl cordon NODE...: spec.unschedulable = true.
import { cordonCommand } from './cordon-node.js';

export default cordonCommand(true);
