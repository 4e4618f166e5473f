// The QC desk's keyboard: one letter per action, except while typing in a text field.

/** Call actions[key] for a plain key press while `active()`; Esc leaves a text field. */
export function listenForKeys(actions, active) {
  document.addEventListener('keydown', (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || event.defaultPrevented) return;
    if (!active()) return;
    const target = event.target;
    // Letters typed into the note (or a select's type-ahead) are text, not commands.
    if (target.closest && target.closest('textarea, select, input:not([type="checkbox"])')) {
      if (event.key === 'Escape') target.blur();
      return;
    }
    const action = actions[event.key.toLowerCase()];
    if (action) {
      event.preventDefault();
      action();
    }
  });
}
