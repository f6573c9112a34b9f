// State: a list of tasks, kept in memory and mirrored to localStorage when it is available
// (a sandboxed preview has no storage; the app still works, it just forgets on reload).
const KEY = 'tasks';

function load() {
  try {
    return JSON.parse(globalThis.localStorage?.getItem(KEY) ?? '[]');
  } catch {
    return [];
  }
}

export function createStore() {
  let tasks = load();
  const listeners = new Set();
  const commit = (next) => {
    tasks = next;
    try {
      globalThis.localStorage?.setItem(KEY, JSON.stringify(tasks));
    } catch {
      // No storage here: keep the state in memory only.
    }
    for (const fn of listeners) fn(tasks);
  };
  return {
    get: () => tasks,
    subscribe(fn) {
      listeners.add(fn);
      fn(tasks);
      return () => listeners.delete(fn);
    },
    add: (title) => commit([...tasks, { id: crypto.randomUUID(), title, done: false }]),
    toggle: (id) => commit(tasks.map((t) => (t.id === id ? { ...t, done: !t.done } : t))),
    remove: (id) => commit(tasks.filter((t) => t.id !== id)),
  };
}
