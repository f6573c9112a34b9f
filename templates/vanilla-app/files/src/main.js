import { createStore } from './store.js';
import { renderTasks, summary } from './view.js';

const store = createStore();
const form = document.getElementById('new-task');
const list = document.getElementById('tasks');
const status = document.getElementById('summary');

form.addEventListener('submit', (event) => {
  event.preventDefault();
  const title = new FormData(form).get('title').toString().trim();
  if (title) store.add(title);
  form.reset();
});

store.subscribe((tasks) => {
  renderTasks(list, tasks, store);
  status.textContent = summary(tasks);
});
