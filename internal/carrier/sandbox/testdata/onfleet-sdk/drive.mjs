// Drives the sandbox with Onfleet's official Node SDK, unchanged, the way an integrator would,
// and writes what each call answered (or threw) as JSON to OUT_FILE for sdk_test.go to check.
// Environment: SANDBOX_URL (no /api/v2: the SDK adds it), API_KEY, HOOK_URL, OUT_FILE.
import { writeFileSync } from 'node:fs';
import Onfleet from '@onfleet/node-onfleet';

const { SANDBOX_URL, API_KEY, HOOK_URL, OUT_FILE } = process.env;
const out = {};
const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });
const caught = (e) => ({ name: e.name, message: e.message, status: e.status, cause: e.cause, request: e.request });

const task = (ref, unparsed = '2695 E Katella Ave, Anaheim, CA 92806, US') => ({
  destination: { address: { unparsed } },
  recipients: [{ name: 'Ada Lovelace', phone: '+14155550100' }],
  notes: `order ${ref}`,
  metadata: [{ name: 'waybill_external_id', type: 'string', value: ref }],
});

try {
  // Constructor: key, timeout, limiter options, base URL (the SDK appends /api/v2).
  const onfleet = new Onfleet(API_KEY, 10000, null, SANDBOX_URL);
  out.verifyKey = await onfleet.verifyKey();

  out.webhook = await onfleet.webhooks.create({ url: HOOK_URL, name: 'batch jobs', trigger: 19 });
  out.task = await onfleet.tasks.create(task('SDK-1'));
  out.job = await onfleet.tasks.batchCreateAsync({
    tasks: [task('SDK-2'), task('SDK-3'), task('SDK-4', `1 Nowhere Rd, Atlantis, XX, US SANDBOX_REJECT`)],
  });
  for (let i = 0; i < 100; i += 1) {
    out.report = await onfleet.tasks.getBatch(out.job.jobId);
    if (out.report.status === 'succeeded' || out.report.status === 'completedWithErrors') break;
    await sleep(100);
  }
  out.got = await onfleet.tasks.get(out.task.id);
  out.page = await onfleet.tasks.get({ from: String(Date.now() - 60000), state: '0,1,2,3' });
  out.matched = await onfleet.tasks.matchMetadata([{ name: 'waybill_external_id', type: 'string', value: 'SDK-3' }]);
  out.webhooks = await onfleet.webhooks.get();

  // Errors must be Onfleet's JSON envelope, or the SDK cannot read them.
  try { await onfleet.tasks.get('AAAAAAAAAAAAAAAAAAAAAAAA'); } catch (e) { out.unknownTask = caught(e); }
  try { await onfleet.tasks.clone(out.task.id); } catch (e) { out.unknownPath = caught(e); }
  try { await onfleet.tasks.update(out.task.id, { notes: 'x' }); } catch (e) { out.wrongMethod = caught(e); }

  out.deleted = await onfleet.webhooks.deleteOne(out.webhook.id);
  out.webhooksAfter = await onfleet.webhooks.get();
} catch (e) {
  out.fatal = { ...caught(e), stack: e.stack };
}
writeFileSync(OUT_FILE, JSON.stringify(out, null, 2));
