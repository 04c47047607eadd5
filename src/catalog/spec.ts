// A service's spec as the API takes it: the fields every type shares, and
// each type's own options block under its name, all from the registry. What
// is refused here is refused alike for every type; a type's normalize checks
// only what is its own.
import { z } from 'zod';
import { checkSchedule, parseRetention } from '../backup/schedule.ts';
import { UserError } from '../errors.ts';
import { parseAllow } from '../firewall/allow.ts';
import { checkLogDriver } from './log-drivers.ts';
import { serviceType, serviceTypes, typeNames, typesWith } from './registry.ts';
import { servesTls, type ServiceSpec, type ServiceSpecInput, type ServiceType } from './types.ts';

const labelName = z.string().regex(/^[a-zA-Z0-9._/-]{1,63}$/, 'label names hold letters, digits, ".", "_", "/" and "-"');
export const serviceName = z.string().regex(/^[a-z][a-z0-9-]{0,30}$/, 'must start with a letter; lower-case letters, digits and "-", at most 31');
const mib = (min: number, max: number) => z.number().int().min(min).max(max).optional();

// Built on first use, not at load: the types' modules load the records layer, which loads this file, while the
// registry is still loading them.
let built: { needed: readonly string[]; schema: z.ZodType<ServiceSpecInput> } | undefined;

function build() {
  const needed = [...new Set(serviceTypes().flatMap((t) => t.needs ?? []))];
  const typeBlocks = Object.fromEntries(serviceTypes().flatMap((t) => (t.options ? [[t.name, t.options.schema.optional()]] : [])));
  const schema = z
    .object({
      type: z.enum(typeNames() as [string, ...string[]]),
      name: serviceName,
      replicas: z.number().int().min(1).max(64).optional(),
      image: z.string().min(1).optional(),
      memoryMiB: mib(16, 1 << 20),
      cpus: z.number().positive().max(256).optional(),
      heapMiB: mib(64, 1 << 20),
      volumeSizeMiB: mib(16, 16 << 20),
      journalVolumeSizeMiB: mib(16, 16 << 20),
      settings: z.record(z.string().regex(/^[a-z][a-z0-9_.-]{0,63}$/), z.string().max(1024)).optional(),
      config: z.string().max(16_384).optional(),
      needs: z.partialRecord(z.enum(needed.length ? (needed as [string, ...string[]]) : ['-']), serviceName).optional(),
      placement: z
        .object({ labels: z.record(labelName, z.string().max(255)) })
        .strict()
        .optional(),
      backupTarget: z.string().min(1).max(1024).optional(),
      backupSchedule: z.string().min(1).max(200).optional(),
      backupRetention: z.string().min(1).max(20).optional(),
      backupVerify: z.boolean().optional(),
      tls: z.enum(['on', 'off']).optional(),
      // From 1 minute (tests watch renewals) to 10 years.
      tlsCertHours: z
        .number()
        .min(1 / 60)
        .max(87_600)
        .optional(),
      allow: z.array(z.string().max(64)).min(1).max(256).optional(),
      logDriver: z.string().min(1).max(200).optional(),
      logOpts: z.record(z.string().min(1).max(100), z.string().max(1000)).optional(),
      restore: z
        .object({
          backup: z.string(),
          target: z.string(),
          keyId: z.string(),
          parts: z.array(z.object({ index: z.number().int().nonnegative(), name: z.string(), key: z.string(), sha256: z.string() }).strict()),
          archive: z.array(z.object({ key: z.string(), name: z.string().regex(/^[A-Za-z0-9._-]+$/) }).strict()).optional(),
          toTime: z.string().datetime({ offset: true }).optional(),
        })
        .strict()
        .optional(),
      ...typeBlocks,
    })
    .strict() as unknown as z.ZodType<ServiceSpecInput>;
  return { needed, schema };
}

/** The types some type needs (`--kafka NAME`): the keys a spec's needs may have. */
export const neededTypes = (): readonly string[] => (built ??= build()).needed;
/** A spec as the API takes it and the records layer reads it: the shared fields and each type's options block. */
export const serviceSpecSchema = (): z.ZodType<ServiceSpecInput> => (built ??= build()).schema;

const flagList = (t: ServiceType) =>
  Object.keys(t.options?.flags ?? {})
    .map((f) => `--${f}`)
    .join(', ');

/**
 * Check a spec against what its type takes, then let the type complete it. Throws UserError naming what to change:
 * another type's options, a JVM heap for a type without a JVM, a journal volume for a type without a journal.
 */
export function completeSpec(input: ServiceSpecInput): ServiceSpec {
  const type = serviceType(input.type);
  for (const other of serviceTypes()) {
    if (other === type || !other.options || input[other.name] === undefined) continue;
    const verb = Object.keys(other.options.flags).length === 1 ? 'is' : 'are';
    throw new UserError(
      `${flagList(other)} ${verb} for ${other.title} services (--type ${other.name}); leave ${verb === 'is' ? 'it' : 'them'} out for a ${type.title} service`,
    );
  }
  if (input.heapMiB !== undefined && !type.jvm)
    throw new UserError(`--heap-mib is for the types that run on a JVM (${typesWith((t) => !!t.jvm)}); ${type.title} takes --memory`);
  if (input.backupSchedule !== undefined) checkSchedule(input.backupSchedule);
  if (input.backupRetention !== undefined) parseRetention(input.backupRetention);
  if ((input.backupSchedule !== undefined || input.backupRetention !== undefined || input.backupVerify) && !type.backup)
    throw new UserError(`${type.title} services cannot be backed up yet: leave out --backup-schedule, --backup-retention and --backup-verify`);
  if (input.backupVerify && input.backupSchedule === undefined) throw new UserError('--backup-verify drills each scheduled backup: give --backup-schedule too');
  if (input.tls === 'on' && !type.tls) throw new UserError(`${type.title} services serve no TLS yet: leave out --tls`);
  if (input.tlsCertHours !== undefined && !servesTls(type, input))
    throw new UserError(`--tls-cert-hours is for services that serve TLS, and this ${type.title} service does not: leave it out`);
  if (input.allow !== undefined) input = { ...input, allow: parseAllow(input.allow) };
  if (input.logDriver !== undefined) checkLogDriver(input.logDriver);
  if (input.logOpts !== undefined && input.logDriver === undefined)
    throw new UserError('--log-opt is for the log driver --log-driver names: give --log-driver too');
  if (input.journalVolumeSizeMiB !== undefined && !type.journal)
    throw new UserError(`${type.title} has no second volume for a log: leave out --journal-volume-size (it is for ${typesWith((t) => !!t.journal)})`);
  return type.normalize(input);
}
