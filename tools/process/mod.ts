/**
 * Child processes read line by line and always stopped by their owner.
 *
 * @module
 */
export { LineProcess } from "./line_process.ts";
export { Subprocess } from "./subprocess.ts";
export { Waiters } from "./waiters.ts";
