# A set merged into an earlier one does not make it recursive: `x` is not in scope.
let x = "outer"; in
{
  a = { x = "inner"; };
  a = rec { y = x; };
}.a.y
