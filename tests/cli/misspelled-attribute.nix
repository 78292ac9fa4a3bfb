let
  packages = { hello = "2.12"; };
in packages.helo
