"""``edge-lstm-device serve``: the HTTP/1.1 protocol (sans-I/O), connections, the API, metrics
and the application (load, reload, signals). Imports the runtime and the bundle, never the CLI."""
