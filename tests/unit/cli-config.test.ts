import { describe, expect, it } from '@jest/globals';
import { parseAssignments, renderConfigDiff } from '../../cli/commands/config.js';
import { exitCodeFor } from '../../cli/output.js';
import { rejection } from '../harness/assertions.js';

describe('hactl config set: key=value pairs', () => {
  it('reads booleans and byte sizes into a PATCH body', () => {
    expect(parseAssignments(['synchronousMode=true', 'paused=false', 'maxReplicaLag=32MB', 'synchronousModeStrict=true'])).toEqual({
      synchronousMode: true,
      paused: false,
      maxReplicaLag: 32 * 1024 * 1024,
      synchronousModeStrict: true,
    });
    expect(parseAssignments(['maxReplicaLag=1048576'])).toEqual({ maxReplicaLag: 1048576 });
  });

  it.each([
    [[], 'give at least one key=value; keys: paused, synchronousMode, synchronousModeStrict, maxReplicaLag'],
    [['paused'], '"paused" is not key=value'],
    [['=true'], '"=true" is not key=value'],
    [['pause=true'], 'unknown setting "pause"; settings: paused, synchronousMode, synchronousModeStrict, maxReplicaLag'],
    [['paused=yes'], 'paused takes true or false, not "yes"'],
    [['paused=True'], 'paused takes true or false, not "True"'],
    [['paused=true', 'paused=false'], 'paused is given twice'],
    [['maxReplicaLag=-1'], 'maxReplicaLag: "-1" is not a byte size'],
    [['synchronousMode=true', 'maxReplicaLag=lots'], 'maxReplicaLag: "lots" is not a byte size'],
  ])('%j is bad_value (exit 2): %s', async (pairs, message) => {
    const e = await rejection(Promise.resolve().then(() => parseAssignments(pairs)));
    expect(e.code).toBe('bad_value');
    expect(exitCodeFor(e.code)).toBe(2);
    expect(e.message.startsWith(message)).toBe(true);
  });

  it('the diff shows each given setting, old -> new or unchanged', () => {
    const before = { paused: false, synchronousMode: false, maxReplicaLag: 16 * 1024 * 1024 };
    const after = { paused: false, synchronousMode: true, maxReplicaLag: 1024 };
    expect(renderConfigDiff(before, after, ['synchronousMode', 'paused', 'maxReplicaLag'])).toEqual([
      'synchronousMode: false -> true',
      'paused: false (unchanged)',
      'maxReplicaLag: 16777216 (16.0 MiB) -> 1024 (1.0 KiB)',
    ]);
  });
});
