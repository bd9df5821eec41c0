# Reference values for tests/NeuralOde.Core.Tests/Implicit/StiffProblemTests.fs, computed with SciPy's Radau
# (Hairer & Wanner's RADAU5, order 5, scipy.integrate.solve_ivp(method="Radau"); SciPy 1.10 as Debian ships it)
# at rtol = 1e-12 and tight absolute tolerances. Run with Debian's interpreter: /usr/bin/python3 stiff_references.py
import numpy as np
from scipy.integrate import solve_ivp

def robertson(t, y):
    y1, y2, y3 = y
    return [-0.04 * y1 + 1e4 * y2 * y3, 0.04 * y1 - 1e4 * y2 * y3 - 3e7 * y2 * y2, 3e7 * y2 * y2]

def robertson_jac(t, y):
    y1, y2, y3 = y
    return [[-0.04, 1e4 * y3, 1e4 * y2], [0.04, -1e4 * y3 - 6e7 * y2, -1e4 * y2], [0.0, 6e7 * y2, 0.0]]

MU = 1000.0
# Van der Pol in Liénard's form as MATLAB's vdp1000 (period about (3 - 2 ln 2) mu, so [0, 3000] is about two periods).
def vdp(t, y):
    return [y[1], MU * (1.0 - y[0] ** 2) * y[1] - y[0]]

def vdp_jac(t, y):
    return [[0.0, 1.0], [-2.0 * MU * y[0] * y[1] - 1.0, MU * (1.0 - y[0] ** 2)]]

def show(name, sol):
    assert sol.success, sol.message
    print(f"{name}: {sol.nfev} evaluations, {len(sol.t)} steps")
    for t, y in zip(sol.t, sol.y.T):
        print(f"  t = {t:g}: [" + "; ".join(repr(float(v)) for v in y) + "]")

times = [1.0, 10.0, 100.0, 1000.0, 1e4, 1e5]
show("Robertson", solve_ivp(robertson, (0.0, 1e5), [1.0, 0.0, 0.0], method="Radau", t_eval=times,
                            rtol=1e-12, atol=[1e-14, 1e-18, 1e-14], jac=robertson_jac))
times = [250.0, 500.0, 1000.0, 1500.0, 2000.0, 3000.0]
show("van der Pol, mu = 1000", solve_ivp(vdp, (0.0, 3000.0), [2.0, 0.0], method="Radau", t_eval=times,
                                          rtol=1e-12, atol=1e-12, jac=vdp_jac))
print("Radau at rtol = atol = 1e-10, for the size of the reference's own error:")
show("van der Pol, mu = 1000", solve_ivp(vdp, (0.0, 3000.0), [2.0, 0.0], method="Radau", t_eval=times,
                                          rtol=1e-10, atol=1e-10, jac=vdp_jac))
# Where the fast transitions of van der Pol are (outputs should lie away from them).
sol = solve_ivp(vdp, (0.0, 3000.0), [2.0, 0.0], method="Radau", rtol=1e-8, atol=1e-8, jac=vdp_jac)
jumps = sol.t[1:][np.diff(np.sign(sol.y[0])) != 0]
print("van der Pol sign changes of y1 near t =", [round(float(t), 1) for t in jumps])
# Explicit RK45's step counts on the same problems (a hint for the Dopri5 comparison).
for span in [1.0]:
    s = solve_ivp(robertson, (0.0, span), [1.0, 0.0, 0.0], method="RK45", rtol=1e-6, atol=1e-10)
    print(f"RK45 on Robertson over [0, {span}] at rtol 1e-6, atol 1e-10: {len(s.t) - 1} steps")
