let
  mkGreeting = { name, greeting ? "hello" }: "${greeting}, ${name}";
in mkGreeting { nmae = "kiln"; }
