/** `ipmove list` at the HTTP level: OVH (Public Cloud projects and /ip) and AWS (Elastic IPs). */
import { describe, expect, it } from 'vitest'
import { MemoryLogger } from '../src/output.js'
import { listIps } from '../src/services/list.js'
import { addresses, awsTestEnv, Ec2Api, instances } from './helpers/ec2-nock.js'
import { failure } from './helpers/errors.js'
import { guardNock } from './helpers/nock-guard.js'
import { OvhApi, reply, testEnv } from './helpers/ovh-nock.js'

const PROJECT = '0123456789abcdef0123456789abcdef'
const OTHER_PROJECT = 'fedcba9876543210fedcba9876543210'
const SBG1 = '11111111-1111-4111-8111-111111111111'

guardNock()

const failover = (id: string, ip: string, routedTo: string | null, status = 'ok') => ({
  id,
  ip,
  block: `${ip}/32`,
  routedTo,
  status,
  progress: status === 'ok' ? 0 : 40,
  subType: 'ovh',
})

describe('ipmove list on OVH', () => {
  it('lists each project’s failover IPs with their instances’ names, then /ip’s classic ones once each', async () => {
    const api = new OvhApi()
      .get('/cloud/project', [PROJECT, OTHER_PROJECT])
      .get(`/cloud/project/${PROJECT}`, { description: 't18s' })
      .get(`/cloud/project/${OTHER_PROJECT}`, { description: '' })
      .get(`/cloud/project/${PROJECT}/ip/failover`, [
        failover('fip-1', '203.0.113.10', SBG1),
        failover('fip-2', '203.0.113.11', null, 'operationPending'),
      ])
      .get(`/cloud/project/${PROJECT}/instance`, [{ id: SBG1, name: 'bi-edge-sbg-1', region: 'SBG5' }])
      .get(`/cloud/project/${OTHER_PROJECT}/ip/failover`, [])
      .get(`/cloud/project/${OTHER_PROJECT}/instance`, [])
      // A Public Cloud IP may show in /ip too: listed once, as a cloud one.
      .get('/ip?type=failover', ['203.0.113.10/32', '198.51.100.7/32'])
      .get('/ip/198.51.100.7%2F32', { routedTo: { serviceName: 'ns1.example' } })
    for (const status of ['init', 'todo', 'doing']) {
      api.get(
        `/ip/198.51.100.7%2F32/task?function=genericMoveFloatingIp&status=${status}`,
        status === 'todo' ? [7] : [],
      )
    }
    const log = new MemoryLogger()
    const result = await listIps({ env: testEnv() }, log)
    expect(result.ips).toEqual([
      {
        ip: '203.0.113.10/32',
        kind: 'cloud',
        id: 'fip-1',
        scope: { id: PROJECT, name: 't18s' },
        holder: { id: SBG1, name: 'bi-edge-sbg-1' },
        pending: false,
        note: undefined,
      },
      {
        ip: '203.0.113.11/32',
        kind: 'cloud',
        id: 'fip-2',
        scope: { id: PROJECT, name: 't18s' },
        holder: null,
        pending: true,
        note: 'status operationPending',
      },
      expect.objectContaining({
        ip: '198.51.100.7/32',
        kind: 'classic',
        holder: { id: 'ns1.example' },
        pending: true,
      }),
    ])
    expect(log.lines[0]).toBe(
      `203.0.113.10/32 (cloud, project t18s (${PROJECT}), id fip-1) is on bi-edge-sbg-1 (${SBG1})`,
    )
    expect(log.lines[1]).toMatch(/^203\.0\.113\.11\/32 .* is on nowhere; pending: status operationPending$/)
    expect(api.writes).toEqual([])
  })

  it('with --project, lists that project only (no /ip)', async () => {
    new OvhApi()
      .get('/cloud/project', [PROJECT])
      .get(`/cloud/project/${PROJECT}`, { description: 't18s' })
      .get(`/cloud/project/${PROJECT}/ip/failover`, [failover('fip-1', '203.0.113.10', SBG1)])
      .get(`/cloud/project/${PROJECT}/instance`, [{ id: SBG1, name: 'bi-edge-sbg-1' }])
    const result = await listIps({ env: testEnv(), project: 't18s' }, new MemoryLogger())
    expect(result.ips.map((ip) => ip.ip)).toEqual(['203.0.113.10/32'])
  })

  it('names the projects when --project matches none (exit 4), and stops at a refused key (exit 3)', async () => {
    new OvhApi().get('/cloud/project', [PROJECT]).get(`/cloud/project/${PROJECT}`, { description: 't18s' })
    const error = await failure(listIps({ env: testEnv(), project: 'nope' }, new MemoryLogger()))
    expect(error.kind).toBe('not-found')
    expect(error.message).toContain(`t18s (${PROJECT})`)

    new OvhApi().get(
      '/cloud/project',
      reply(403, { message: 'Invalid credential', errorCode: 'INVALID_CREDENTIAL' }),
    )
    expect((await failure(listIps({ env: testEnv() }, new MemoryLogger()))).kind).toBe('auth')
  })
})

describe('ipmove list on AWS', () => {
  it('lists the region’s Elastic IPs, naming their instances in one request', async () => {
    const api = new Ec2Api()
      .on(
        'DescribeAddresses',
        {},
        addresses(
          { ip: '203.0.113.5', allocation: 'eipalloc-0aaaaaaaaaaaaaaa1', instance: 'i-0aaaaaaaaaaaaaaa1' },
          { ip: '203.0.113.6', allocation: 'eipalloc-0bbbbbbbbbbbbbbb2' },
          { ip: '203.0.113.7', allocation: 'eipalloc-0ccccccccccccccc3', eni: 'eni-0ccccccccccccccc3' },
        ),
      )
      .on(
        'DescribeInstances',
        { 'InstanceId.1': 'i-0aaaaaaaaaaaaaaa1' },
        instances({ id: 'i-0aaaaaaaaaaaaaaa1', name: 'web-1', enis: [] }),
      )
    const result = await listIps({ env: awsTestEnv(), provider: 'aws' }, new MemoryLogger())
    expect(result.ips).toEqual([
      {
        ip: '203.0.113.5/32',
        kind: 'eip',
        id: 'eipalloc-0aaaaaaaaaaaaaaa1',
        holder: { id: 'i-0aaaaaaaaaaaaaaa1', name: 'web-1' },
        pending: false,
      },
      { ip: '203.0.113.6/32', kind: 'eip', id: 'eipalloc-0bbbbbbbbbbbbbbb2', holder: null, pending: false },
      {
        ip: '203.0.113.7/32',
        kind: 'eip',
        id: 'eipalloc-0ccccccccccccccc3',
        holder: { id: 'eni-0ccccccccccccccc3', name: undefined },
        pending: false,
      },
    ])
    expect(api.of('DescribeAddresses')[0]!.params).not.toHaveProperty('Filter.1.Name')
  })
})
