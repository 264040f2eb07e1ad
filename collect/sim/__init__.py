"""The simulated PiPER: MuJoCo world (`world`), GL backend choice (`gl`), sim cameras
(`camera`), the emulator's joint source (`joints`) and the runtime that owns them all on
one worker thread (`runtime`). Tasks, the virtual operator and gymnasium envs live beside.

Nothing is imported here: `import collect.sim` stays cheap and never touches MuJoCo or GL.
"""
