# `<p>` is `__findFile __nixPath "p"`: a local `__nixPath` (or `__findFile`) is used instead
# of the global one.
[
  (let __nixPath = [ { prefix = ""; path = ./fixtures/search-a; } ]; in import <which.nix>)
  (let __nixPath = [ { prefix = "k"; path = ./fixtures/search-b; } ]; in import <k/which.nix>)
  (let __findFile = path: name: "found ${name}"; in <anything/at/all>)
]
