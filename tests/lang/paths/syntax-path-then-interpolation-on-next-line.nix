# A path ends at whitespace in Nix: the interpolation on the next line is a syntax error
# (rnix keeps it inside the path node; found by fuzzing the parser).
/.
${""}
