import type { HttpContext } from './context.js';

/** `user`: a builder's JWT is required. `any`: a JWT or a cohost share token. `public`: no auth. */
export type AuthMode = 'user' | 'any' | 'public';
export type Handler = (ctx: HttpContext) => Promise<void> | void;

interface Route {
  method: string;
  segments: string[];
  wildcard: boolean;
  auth: AuthMode;
  handler: Handler;
}

export interface Match {
  handler: Handler;
  auth: AuthMode;
  params: Record<string, string>;
  /** The rest of the path for a trailing `*`, still percent-encoded (the preview decodes it itself). */
  rest: string;
}

/**
 * A small router: literal segments, `:param` segments and a trailing `*`. Literal routes
 * win over params at the same depth because routes are tried in registration order and
 * callers register the specific ones first.
 */
export class Router {
  private readonly routes: Route[] = [];

  add(method: string, pattern: string, handler: Handler, auth: AuthMode = 'user'): this {
    const segments = pattern.split('/').filter(Boolean);
    const wildcard = segments[segments.length - 1] === '*';
    if (wildcard) segments.pop();
    this.routes.push({ method: method.toUpperCase(), segments, wildcard, auth, handler });
    return this;
  }

  get(p: string, h: Handler, auth?: AuthMode): this { return this.add('GET', p, h, auth); }
  post(p: string, h: Handler, auth?: AuthMode): this { return this.add('POST', p, h, auth); }
  put(p: string, h: Handler, auth?: AuthMode): this { return this.add('PUT', p, h, auth); }
  patch(p: string, h: Handler, auth?: AuthMode): this { return this.add('PATCH', p, h, auth); }
  delete(p: string, h: Handler, auth?: AuthMode): this { return this.add('DELETE', p, h, auth); }

  /**
   * Find the route for a method and raw path. Returns `'bad_path'` when a segment is not
   * valid percent-encoding, `'method'` when the path exists under another method.
   */
  match(method: string, rawPath: string): Match | 'not_found' | 'method' | 'bad_path' {
    const rawSegs = rawPath.split('/').filter(Boolean);
    const segs: string[] = [];
    for (const s of rawSegs) {
      try {
        segs.push(decodeURIComponent(s));
      } catch {
        return 'bad_path';
      }
    }
    let pathExists = false;
    const m = method === 'HEAD' ? 'GET' : method;
    for (const r of this.routes) {
      const params = matchSegments(r, segs);
      if (!params) continue;
      if (r.method !== m) {
        pathExists = true;
        continue;
      }
      return { handler: r.handler, auth: r.auth, params, rest: r.wildcard ? rawSegs.slice(r.segments.length).join('/') : '' };
    }
    return pathExists ? 'method' : 'not_found';
  }
}

function matchSegments(r: Route, segs: string[]): Record<string, string> | undefined {
  if (r.wildcard ? segs.length < r.segments.length : segs.length !== r.segments.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < r.segments.length; i++) {
    const pat = r.segments[i]!;
    const seg = segs[i]!;
    if (pat.startsWith(':')) params[pat.slice(1)] = seg;
    else if (pat !== seg) return undefined;
  }
  return params;
}
