"""The recurrent models run with numpy alone (no TFLite interpreter): a cell is one step, a
runner loops any cell, a network stacks runners."""
