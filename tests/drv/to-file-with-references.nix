let
  data = builtins.toFile "data.txt" "some data";
  script = builtins.toFile "run.sh" ''
    cat ${data} ${./fixtures/hello.txt} > $out
  '';
in
derivation { name = "refs"; system = "x86_64-linux"; builder = "/bin/sh"; args = [ script ]; }
