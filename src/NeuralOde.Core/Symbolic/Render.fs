/// Expressions as LaTeX and as plain text, with parentheses only where precedence needs them: ⊙ for the elementwise
/// product, juxtaposition for the matrix product, ᵀ for the transpose, Σ for the full sum.
module NeuralOde.Core.Symbolic.Render

open System.Globalization
open NeuralOde.Core.Symbolic

let private number (latex: bool) (c: float) =
    let pi = if latex then "\\pi" else "pi"
    let k = c / System.Math.PI
    if c = floor c && abs c < 1e15 then (int64 c).ToString(CultureInfo.InvariantCulture)
    elif c <> 0.0 && abs (k - round k) < 1e-12 && abs k < 1e6 then
        match round k with
        | 1.0 -> pi
        | -1.0 -> "-" + pi
        | m -> (int64 m).ToString(CultureInfo.InvariantCulture) + (if latex then pi else "*" + pi)
    else c.ToString("R", CultureInfo.InvariantCulture)

let private greek =
    [ "alpha"; "beta"; "gamma"; "delta"; "epsilon"; "zeta"; "eta"; "theta"; "iota"; "kappa"; "lambda"; "mu"; "nu"; "xi"
      "pi"; "rho"; "sigma"; "tau"; "phi"; "chi"; "psi"; "omega" ]

/// A variable in LaTeX: a Greek letter by name or character (theta, θ → \theta), trailing digits as a subscript
/// (alpha0 → \alpha_{0}, w1 → w_{1}), other names of several letters upright (\mathrm{name}).
let private variable (name: string) =
    let stem = name.TrimEnd([| '0' .. '9' |])
    let digits = name.Substring(stem.Length)
    let letters = "αβγδεζηθικλμνξπρστφχψω"
    let body =
        match List.tryFind ((=) stem) greek, stem with
        | Some g, _ -> "\\" + g
        | None, s when s.Length = 1 && letters.Contains s -> "\\" + greek[letters.IndexOf s]
        | None, s when s.Length = 1 -> s
        | None, "" -> ""
        | None, s -> $"\\mathrm{{{s}}}"
    if digits = "" then (if stem = "" then name else body)
    elif stem = "" then name
    else $"{body}_{{{digits}}}"

/// Precedence: sums 1, products 2, unary minus 3, powers and transposes 4, atoms 5.
let rec private precedence (e: Expr) =
    match e with
    | Add _ | Sub _ -> 1
    | Mul _ | Div _ | MatMul _ -> 2
    | Neg _ -> 3
    | Pow _ | Transpose _ -> 4
    | Const c when c < 0.0 -> 3
    | Const _ | Var _ | Apply _ | SumAll _ | OnesLike _ | Psi _ | SumAxis _ | Spread _ | Concat _ | Part _ | MatrixExp _ | ExpFrechet _ -> 5
    | ReduceLike(a, _) -> precedence a

let private render (latex: bool) (e: Expr) =
    let rec go (e: Expr) =
        let parens (text: string) = if latex then $"\\left({text}\\right)" else $"({text})"
        let wrap (inner: Expr) (least: int) =
            let text = go inner
            if precedence inner < least then parens text else text
        // Elementwise and matrix products side by side read ambiguously: the inner one is always parenthesised.
        let wrapProduct (inner: Expr) (isOther: Expr -> bool) (least: int) =
            if isOther inner then parens (go inner) else wrap inner least
        let isElementwise e = match e with Mul _ | Div _ -> true | _ -> false
        let isMatrix e = match e with MatMul _ -> true | _ -> false
        match e with
        | Const c -> number latex c
        | Var(name, _) -> if latex then variable name else name
        | Add(a, b) -> $"{wrap a 1} + {wrap b 2}"
        | Sub(a, b) -> $"{wrap a 1} - {wrap b 2}"
        | Mul(Const c, b) when c >= 0.0 ->
            // A coefficient is written before its factor: 2 (z − 1), not 2 ⊙ (z − 1).
            let r = wrapProduct b isMatrix 3
            if latex then $"{number latex c} {r}" else $"{number latex c}*{r}"
        | Mul(a, b) ->
            let l, r = wrapProduct a isMatrix 2, wrapProduct b isMatrix 3
            if latex then $"{l} \\odot {r}" else $"{l} .* {r}"
        | Div(a, b) -> if latex then $"\\frac{{{go a}}}{{{go b}}}" else $"{wrap a 2} / {wrap b 3}"
        | MatMul(a, b) ->
            let l, r = wrapProduct a isElementwise 2, wrapProduct b isElementwise 3
            if latex then $"{l} {r}" else $"{l} @ {r}"
        | Neg a -> $"-{wrap a 3}"
        | Pow(a, p) -> if latex then $"{wrap a 5}^{{{number latex p}}}" else $"{wrap a 5}^{number latex p}"
        | Transpose a -> if latex then $"{wrap a 5}^\\top" else $"{wrap a 5}'"
        | SumAll a -> if latex then $"\\sum {wrap a 3}" else $"sum({go a})"
        | OnesLike a -> if latex then $"\\mathbf{{1}}_{{{go a}}}" else $"ones_like({go a})"
        | SumAxis(a, k) -> if latex then $"\\sum_{{[{k}]}} {wrap a 3}" else $"sum({go a}, axis={k})"
        // Shape bookkeeping, not mathematics: a broadcast operand's cotangent is written as the cotangent.
        | ReduceLike(a, _) -> go a
        | MatrixExp m -> if latex then $"e^{{{go m}}}" else $"expm({go m})"
        | ExpFrechet(x, e) -> if latex then $"L_{{\\exp}}\\left({go x},\\, {go e}\\right)" else $"expm_frechet({go x}, {go e})"
        | Spread(a, k, like) -> if latex then $"\\operatorname{{spread}}_{{[{k}]}}\\left({go a}\\right)" else $"spread({go a}, axis={k}, like={go like})"
        | Concat(parts, k) ->
            let separator = if latex then ",\\, " else ", "
            let items = parts |> List.map go |> String.concat separator
            if latex then $"\\left[{items}\\right]_{{[{k}]}}" else $"[{items}]_{k}"
        | Part(a, _, i, k) -> if latex then $"\\left({go a}\\right)_{{[{k}]:{i}}}" else $"part({go a}, axis={k}, index={i})"
        | Psi(_, j, s, d) ->
            let letter = if d < 0 then (if latex then "\\Psi" else "Psi") else (if latex then "\\psi" else "psi")
            let prime = if d = 1 then "'" else ""
            if latex then $"{letter}{prime}_{{{j}}}\\left({go s}\\right)" else $"{letter}{prime}_{j}({go s})"
        | Apply(f, a) ->
            let name =
                match f with
                | Tanh -> if latex then "\\tanh" else "tanh"
                | Sigmoid -> if latex then "\\sigma" else "sigmoid"
                | Softplus -> if latex then "\\operatorname{softplus}" else "softplus"
                | Sin -> if latex then "\\sin" else "sin"
                | Cos -> if latex then "\\cos" else "cos"
                | Exp -> if latex then "\\exp" else "exp"
                | Log -> if latex then "\\log" else "log"
            if latex then $"{name}\\left({go a}\\right)" else $"{name}({go a})"
    go e

/// The expression in LaTeX.
let latex (e: Expr) = render true e

/// The expression as plain text.
let text (e: Expr) = render false e
