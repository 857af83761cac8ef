// The ipmi fencing agent against RECORDED ipmitool answers (there is no BMC here): the argv it
// runs (lanplus, the password from a file, never inline, no shell) and how it reads the replies.
// The real agent is exercised only by this recording; see README, "What is not exercised here".

import assert from 'node:assert/strict';
import { createFencingAgent, FencingError } from '../../drivers/fencing/index.js';
import { parsePowerStatus, type CommandResult } from '../../drivers/fencing/ipmi-agent.js';

/** ipmitool 1.8.19 answers, as printed by a Supermicro BMC. */
const RECORDED: Record<string, CommandResult> = {
  'power off': { code: 0, stdout: 'Chassis Power Control: Down/Off\n', stderr: '' },
  'status off': { code: 0, stdout: 'Chassis Power is off\n', stderr: '' },
  'status on': { code: 0, stdout: 'Chassis Power is on\n', stderr: '' },
  'unreachable': { code: 1, stdout: '', stderr: 'Error: Unable to establish IPMI v2 / RMCP+ session\n' },
};

function recorder(answers: CommandResult[]) {
  const calls: string[][] = [];
  return {
    calls,
    run: async (argv: readonly string[]) => {
      calls.push([...argv]);
      const a = answers.shift();
      if (!a) throw new Error('no more recorded answers');
      return a;
    },
  };
}

const spec = { agent: 'ipmi' as const, host: 'bmc-blade1.example', user: 'fence', passwordFile: '/etc/virtualinux/bmc-blade1.pw' };

describe('ipmi fencing agent (recorded ipmitool)', () => {
  it('powers off with lanplus and the password file, and confirms by status', async () => {
    const r = recorder([RECORDED['power off']!, RECORDED['status off']!]);
    const agent = createFencingAgent('blade1', spec, { run: r.run });
    await agent.powerOff();
    const s = await agent.status();
    assert.equal(s.state, 'off');
    const base = ['ipmitool', '-I', 'lanplus', '-H', 'bmc-blade1.example', '-U', 'fence', '-f', '/etc/virtualinux/bmc-blade1.pw', 'chassis', 'power'];
    assert.deepEqual(r.calls, [[...base, 'off'], [...base, 'status']]);
    assert.ok(!r.calls.flat().includes('-P'), 'never a password on the command line');
  });

  it('a node still on is not fenced; an unreachable BMC is unknown and a failed power-off throws', async () => {
    const on = recorder([RECORDED['status on']!]);
    assert.equal((await createFencingAgent('blade1', spec, { run: on.run }).status()).state, 'on');
    const down = recorder([RECORDED['unreachable']!, RECORDED['unreachable']!]);
    const agent = createFencingAgent('blade1', spec, { run: down.run });
    await assert.rejects(agent.powerOff(), (e: Error) => e instanceof FencingError && /exited 1: Error: Unable to establish/.test(e.message));
    const s = await agent.status();
    assert.equal(s.state, 'unknown');
    assert.match(s.detail, /Unable to establish/);
  });

  it('parses only the exact status lines', () => {
    assert.equal(parsePowerStatus('Chassis Power is off\n'), 'off');
    assert.equal(parsePowerStatus('Chassis Power is on'), 'on');
    assert.equal(parsePowerStatus('Chassis Power is unknown'), 'unknown');
    assert.equal(parsePowerStatus(''), 'unknown');
  });

  it('names the missing field of an agent', () => {
    assert.throws(() => createFencingAgent('blade1', { agent: 'ipmi', host: 'h', user: 'u' }), /PhysicalNode blade1: spec.fencing.passwordFile is required for the ipmi agent/);
    assert.throws(() => createFencingAgent('blade1', { agent: 'testbed' }), /spec.fencing.testbedDir is required/);
    assert.throws(() => createFencingAgent('blade1', { agent: 'ssh-reboot' } as never), /is not a fencing agent/);
  });
});
