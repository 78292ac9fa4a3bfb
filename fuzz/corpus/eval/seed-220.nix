# baseNameOf and dirOf cut at `/` bytes and keep the rest as it is.
let
  name = "/a/${builtins.substring 0 1 "é"}/b${builtins.substring 1 1 "é"}";
in
[ (baseNameOf name) (dirOf name) ]
