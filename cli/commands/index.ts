import type { CommandRegistrar } from '../context.js';
import { clusterCommands } from './cluster.js';
import { configCommands } from './config.js';
import { dsnCommands } from './dsn.js';
import { localCommands } from './local.js';
import { profilesCommands } from './profiles.js';
import { snapshotCommands } from './snapshot.js';

/**
 * Every top-level command of hactl, in help order. To add one, write a `CommandRegistrar` (see
 * `cli/context.ts`) and list it here.
 */
export const commands: CommandRegistrar[] = [profilesCommands, clusterCommands, configCommands, dsnCommands, snapshotCommands, localCommands];
