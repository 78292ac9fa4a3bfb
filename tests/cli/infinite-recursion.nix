let
  config = { port = config.port + 1; };
in config.port
