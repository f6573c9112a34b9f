import { AppError } from '../errors.js';
import { isPlainObject } from '../validate.js';

/** Events an agent sends on its channel (docs/agent-protocol.md). */
export type AgentEvent =
  | { type: 'message'; role: 'assistant' | 'user' | 'system'; content: string }
  | { type: 'tool_call'; id: string; name: string; args: unknown }
  | { type: 'tool_result'; callId: string; output: unknown; isError: boolean }
  | { type: 'status'; state: string; detail?: string }
  | { type: 'context'; patch: Record<string, unknown> }
  | { type: 'permission_request'; requestId: string; toolCall: unknown; options: Array<{ optionId: string; name: string; kind: string }> };

const ROLES = new Set(['assistant', 'user', 'system']);
const ID_RE = /^[A-Za-z0-9._:@/-]{1,128}$/;
const STATE_RE = /^[a-z][a-z0-9_]{0,63}$/;
/** Message text and tool payloads are bounded by the frame limit; these bound the small fields. */
const MAX_DETAIL = 4096;
const MAX_CONTEXT_BYTES = 64 * 1024;

function bad(message: string, field: string): never {
  throw new AppError('SM_ERR_VALIDATION', message, { details: { field } });
}

/** Validate an agent frame into an event, or throw a 400-class AppError naming the field. */
export function parseAgentEvent(frame: Record<string, unknown>): AgentEvent {
  switch (frame.type) {
    case 'message': {
      const role = frame.role ?? 'assistant';
      if (typeof role !== 'string' || !ROLES.has(role)) bad('"role" must be assistant, user or system.', 'role');
      if (typeof frame.content !== 'string') bad('"content" must be a string.', 'content');
      return { type: 'message', role: role as 'assistant', content: frame.content };
    }
    case 'tool_call': {
      if (typeof frame.id !== 'string' || !ID_RE.test(frame.id)) bad('"id" must be 1-128 characters of [A-Za-z0-9._:@/-].', 'id');
      if (typeof frame.name !== 'string' || frame.name.length === 0 || frame.name.length > 128) bad('"name" must be a string of 1-128 characters.', 'name');
      return { type: 'tool_call', id: frame.id, name: frame.name, args: frame.args ?? null };
    }
    case 'tool_result': {
      if (typeof frame.callId !== 'string' || !ID_RE.test(frame.callId)) bad('"callId" must name a tool call.', 'callId');
      if (frame.isError !== undefined && typeof frame.isError !== 'boolean') bad('"isError" must be true or false.', 'isError');
      if (!('output' in frame)) bad('"output" is required.', 'output');
      return { type: 'tool_result', callId: frame.callId, output: frame.output, isError: frame.isError === true };
    }
    case 'status': {
      if (typeof frame.state !== 'string' || !STATE_RE.test(frame.state)) bad('"state" must be a lower-case word such as thinking, waiting_for_input or done.', 'state');
      if (frame.detail !== undefined && (typeof frame.detail !== 'string' || frame.detail.length > MAX_DETAIL)) bad(`"detail" must be a string of at most ${MAX_DETAIL} characters.`, 'detail');
      return frame.detail === undefined ? { type: 'status', state: frame.state } : { type: 'status', state: frame.state, detail: frame.detail as string };
    }
    case 'context': {
      if (!isPlainObject(frame.patch)) bad('"patch" must be an object.', 'patch');
      if (JSON.stringify(frame.patch).length > MAX_CONTEXT_BYTES) bad('"patch" must be under 64 KiB.', 'patch');
      return { type: 'context', patch: frame.patch };
    }
    default:
      throw new AppError('SM_ERR_WS_UNKNOWN_TYPE', `Unknown agent event "${String(frame.type).slice(0, 40)}".`);
  }
}
