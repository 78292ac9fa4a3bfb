import (toString ./fixtures/value.nix)
