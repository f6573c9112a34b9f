// Runs on every page (loaded with `defer`, so the DOM is ready).
document.getElementById('year').textContent = String(new Date().getFullYear());

const button = document.getElementById('greet');
if (button) {
  button.addEventListener('click', () => {
    const out = document.getElementById('greeting');
    out.textContent = `Hello from ${document.title}!`;
    out.hidden = false;
  });
}
