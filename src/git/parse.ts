import { AppError } from '../errors.js';
import { isName } from '../validate.js';

/** One changed path from `git status --porcelain=v2`. `.` in index/worktree means unchanged. */
export interface StatusFile {
  path: string;
  origPath?: string;
  kind: 'changed' | 'renamed' | 'copied' | 'unmerged' | 'untracked';
  index: string;
  worktree: string;
}

export interface Status {
  branch: { head: string | null; oid: string | null; upstream: string | null; ahead: number; behind: number; detached: boolean };
  files: StatusFile[];
  clean: boolean;
}

/** Parse `git status --porcelain=v2 --branch -z` (documented in git-status(1)). */
export function parseStatusV2(out: string): Status {
  const branch: Status['branch'] = { head: null, oid: null, upstream: null, ahead: 0, behind: 0, detached: false };
  const files: StatusFile[] = [];
  const fields = out.split('\0');
  for (let i = 0; i < fields.length; i++) {
    const f = fields[i]!;
    if (!f) continue;
    if (f.startsWith('# ')) {
      const [, key, ...rest] = f.split(' ');
      const val = rest.join(' ');
      if (key === 'branch.oid') branch.oid = val === '(initial)' ? null : val;
      else if (key === 'branch.head') {
        branch.detached = val === '(detached)';
        branch.head = branch.detached ? null : val;
      } else if (key === 'branch.upstream') branch.upstream = val;
      else if (key === 'branch.ab') {
        const m = /^\+(\d+) -(\d+)$/.exec(val);
        if (m) {
          branch.ahead = Number(m[1]);
          branch.behind = Number(m[2]);
        }
      }
      continue;
    }
    const type = f[0];
    if (type === '1') {
      // 1 XY sub mH mI mW hH hI path
      const parts = splitN(f, 9);
      const xy = parts[1]!;
      files.push({ path: parts[8]!, kind: 'changed', index: xy[0]!, worktree: xy[1]! });
    } else if (type === '2') {
      // 2 XY sub mH mI mW hH hI Xscore path, then origPath as the next NUL field
      const parts = splitN(f, 10);
      const xy = parts[1]!;
      const score = parts[8]!;
      files.push({ path: parts[9]!, origPath: fields[++i] ?? '', kind: score.startsWith('C') ? 'copied' : 'renamed', index: xy[0]!, worktree: xy[1]! });
    } else if (type === 'u') {
      // u XY sub m1 m2 m3 mW h1 h2 h3 path
      const parts = splitN(f, 11);
      const xy = parts[1]!;
      files.push({ path: parts[10]!, kind: 'unmerged', index: xy[0]!, worktree: xy[1]! });
    } else if (type === '?') {
      files.push({ path: f.slice(2), kind: 'untracked', index: '?', worktree: '?' });
    }
  }
  return { branch, files, clean: files.length === 0 };
}

/** Split on the first n-1 spaces (the last field, a path, may hold spaces). */
function splitN(s: string, n: number): string[] {
  const out: string[] = [];
  let rest = s;
  for (let i = 0; i < n - 1; i++) {
    const j = rest.indexOf(' ');
    if (j < 0) break;
    out.push(rest.slice(0, j));
    rest = rest.slice(j + 1);
  }
  out.push(rest);
  return out;
}

export interface LogEntry {
  sha: string;
  parents: string[];
  author: { name: string; email: string };
  authoredAt: string;
  committer: { name: string; email: string };
  committedAt: string;
  subject: string;
}

/** `--format` for parseLog: unit separators between fields, record separators between commits. */
export const LOG_FORMAT = '--format=%H%x1f%P%x1f%an%x1f%ae%x1f%aI%x1f%cn%x1f%ce%x1f%cI%x1f%s%x1e';

export function parseLog(out: string): LogEntry[] {
  return out
    .split('\x1e')
    .map((r) => r.replace(/^\n/, ''))
    .filter((r) => r.length > 0)
    .map((r) => {
      const [sha, parents, an, ae, ad, cn, ce, cd, subject] = r.split('\x1f');
      return {
        sha: sha!,
        parents: parents ? parents.split(' ') : [],
        author: { name: an ?? '', email: ae ?? '' },
        authoredAt: ad ?? '',
        committer: { name: cn ?? '', email: ce ?? '' },
        committedAt: cd ?? '',
        subject: subject ?? '',
      };
    });
}

/**
 * A branch name we pass to git: git's ref rules (check-ref-format) in a conservative
 * subset, never starting with `-`, so it cannot be read as an option.
 */
export function assertBranch(v: unknown, field = 'branch'): string {
  const ok =
    typeof v === 'string' &&
    /^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$/.test(v) &&
    !v.includes('..') &&
    !v.includes('//') &&
    !v.endsWith('/') &&
    !v.endsWith('.') &&
    !v.endsWith('.lock') &&
    !v.split('/').some((p) => p.startsWith('.'));
  if (!ok) throw new AppError('SM_ERR_VALIDATION', `"${field}" is not a valid branch name.`, { details: { field } });
  return v;
}

/** A remote name: the same rule as other names (DESIGN §3). */
export function assertRemoteName(v: unknown, field = 'remote'): string {
  if (!isName(v)) throw new AppError('SM_ERR_VALIDATION', `"${field}" must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$.`, { details: { field } });
  return v;
}
