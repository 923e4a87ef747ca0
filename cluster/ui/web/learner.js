// The learner selector of the dashboard (index.html): a run of several learners (a game with roles:
// one per role) has a league each, and the page shows one, chosen here and kept in the URL's
// #learner=NAME. Loaded before app.js, whose `view`, `saveView` and `refreshNow` it uses when the
// choice changes; app.js calls renderLearners on every state (and on a 404 that lists the learners).
"use strict";

function renderLearners(learners, current) {
  const names = (learners || []).filter((n) => typeof n === "string");
  const pick = document.getElementById("learner-pick");
  pick.hidden = names.length < 2;  // a run of one learner looks as it always did
  document.getElementById("league-of").textContent = current ? `of ${current}` : "";
  const select = document.getElementById("learner");
  const have = [...select.options].map((o) => o.value);
  if (have.join("\n") !== names.join("\n")) {
    select.replaceChildren(...names.map((n) => el("option", { value: n }, n)));
  }
  select.value = names.includes(current) ? current : "";  // none chosen while the asked one is unknown
}

function bindLearner() {
  const select = document.getElementById("learner");
  select.addEventListener("change", () => {
    view.learner = select.value;
    view.curves = null;  // another league has other players: its default curves
    saveView();
    refreshNow();
  });
}
