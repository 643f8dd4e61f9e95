"""The portal: the officer console (and later the citizen pages), rendered on the server over
the other services' public HTTP APIs. It keeps no database of its own."""
