// Rendering: turns the task list into DOM. Pure DOM APIs, no innerHTML with user text.
export function renderTasks(list, tasks, actions) {
  list.replaceChildren(
    ...tasks.map((task) => {
      const li = document.createElement('li');
      li.className = task.done ? 'done' : '';
      const box = document.createElement('input');
      box.type = 'checkbox';
      box.checked = task.done;
      box.addEventListener('change', () => actions.toggle(task.id));
      const label = document.createElement('span');
      label.textContent = task.title;
      const del = document.createElement('button');
      del.type = 'button';
      del.textContent = 'Delete';
      del.addEventListener('click', () => actions.remove(task.id));
      li.append(box, label, del);
      return li;
    }),
  );
}

export function summary(tasks) {
  const open = tasks.filter((t) => !t.done).length;
  return tasks.length === 0 ? 'Nothing to do yet.' : `${open} of ${tasks.length} open`;
}
