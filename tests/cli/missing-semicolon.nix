let
  version = "1.0"
  name = "hello";
in "${name}-${version}"
