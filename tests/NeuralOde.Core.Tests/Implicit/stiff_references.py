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

# Fisher-KPP reaction-diffusion, split for the IMEX tests (KenCarpTests.fs): u_t = D u_xx + r u (1 - u) on (0, 1)
# with u = 0 at both ends, N = 32 interior points (dx = 1/33), second differences; D = 1 (the diffusion's stiffest
# eigenvalue is about -4D/dx^2 = -4356), r = 20, u(0, x) = sin(pi x) / 2. Values at t = 0.5 and 1 of points 3, 8, 16, 24.
N, D, R = 32, 1.0, 20.0
dx = 1.0 / (N + 1)
lap = (np.diag(-2.0 * np.ones(N)) + np.diag(np.ones(N - 1), 1) + np.diag(np.ones(N - 1), -1)) * (D / dx ** 2)
def fisher(t, u):
    return lap @ u + R * u * (1.0 - u)
def fisher_jac(t, u):
    return lap + np.diag(R * (1.0 - 2.0 * u))
xs = dx * np.arange(1, N + 1)
sol = solve_ivp(fisher, (0.0, 1.0), 0.5 * np.sin(np.pi * xs), method="Radau", t_eval=[0.5, 1.0],
                rtol=1e-12, atol=1e-14, jac=fisher_jac)
assert sol.success, sol.message
print(f"Fisher-KPP: {sol.nfev} evaluations, {len(sol.t)} outputs")
for t, u in zip(sol.t, sol.y.T):
    print(f"  t = {t:g}: [" + "; ".join(repr(float(u[i])) for i in [3, 8, 16, 24]) + "]")
s = solve_ivp(fisher, (0.0, 1.0), 0.5 * np.sin(np.pi * xs), method="RK45", rtol=1e-6, atol=1e-9)
print(f"RK45 on Fisher-KPP over [0, 1] at rtol 1e-6, atol 1e-9: {len(s.t) - 1} steps")

# HIRES (Hairer & Wanner, "Solving ODEs II", §IV.10; the IVP test set's "hires"): 8 species, t in [0, 321.8122].
def hires(t, y):
    y1, y2, y3, y4, y5, y6, y7, y8 = y
    return [-1.71 * y1 + 0.43 * y2 + 8.32 * y3 + 0.0007,
            1.71 * y1 - 8.75 * y2,
            -10.03 * y3 + 0.43 * y4 + 0.035 * y5,
            8.32 * y2 + 1.71 * y3 - 1.12 * y4,
            -1.745 * y5 + 0.43 * y6 + 0.43 * y7,
            -280.0 * y6 * y8 + 0.69 * y4 + 1.71 * y5 - 0.43 * y6 + 0.69 * y7,
            280.0 * y6 * y8 - 1.81 * y7,
            -280.0 * y6 * y8 + 1.81 * y7]

def hires_jac(t, y):
    j = np.zeros((8, 8))
    j[0, 0], j[0, 1], j[0, 2] = -1.71, 0.43, 8.32
    j[1, 0], j[1, 1] = 1.71, -8.75
    j[2, 2], j[2, 3], j[2, 4] = -10.03, 0.43, 0.035
    j[3, 1], j[3, 2], j[3, 3] = 8.32, 1.71, -1.12
    j[4, 4], j[4, 5], j[4, 6] = -1.745, 0.43, 0.43
    j[5, 3], j[5, 4], j[5, 5], j[5, 6], j[5, 7] = 0.69, 1.71, -280.0 * y[7] - 0.43, 0.69, -280.0 * y[5]
    j[6, 5], j[6, 6], j[6, 7] = 280.0 * y[7], -1.81, 280.0 * y[5]
    j[7, 5], j[7, 6], j[7, 7] = -280.0 * y[7], 1.81, -280.0 * y[5]
    return j

HIRES_END = 321.8122
hires0 = [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0057]
show("HIRES", solve_ivp(hires, (0.0, HIRES_END), hires0, method="Radau", t_eval=[HIRES_END],
                        rtol=1e-12, atol=1e-16, jac=hires_jac))
print("Radau at rtol = 1e-10, atol = 1e-14, for the size of the reference's own error:")
show("HIRES", solve_ivp(hires, (0.0, HIRES_END), hires0, method="Radau", t_eval=[HIRES_END],
                        rtol=1e-10, atol=1e-14, jac=hires_jac))
