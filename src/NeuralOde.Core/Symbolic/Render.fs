/// Expressions as LaTeX and as plain text, with parentheses only where precedence needs them: ⊙ for the elementwise
/// product, juxtaposition for the matrix product, ᵀ for the transpose, Σ for the full sum.
module NeuralOde.Core.Symbolic.Render

open System.Collections.Generic
open System.Globalization
open System.Text
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

/// The characters LaTeX gives a meaning to, written as themselves in math mode (a control word ends with {} so
/// that a letter after it is not read as part of its name).
let private special =
    dict [ '\\', "\\backslash{}"; '{', "\\{"; '}', "\\}"; '%', "\\%"; '$', "\\$"; '&', "\\&"; '#', "\\#"
           '_', "\\_"; '^', "\\hat{}"; '~', "\\sim{}" ]

/// `text` with LaTeX's special characters escaped, so that any name gives balanced braces and no comment.
let private escape (text: string) =
    let output = StringBuilder()
    for c in text do
        match special.TryGetValue c with
        | true, escaped -> output.Append escaped |> ignore
        | _ -> output.Append c |> ignore
    output.ToString()

/// A variable in LaTeX: a Greek letter by name or character (theta, θ → \theta), trailing digits as a subscript
/// (alpha0 → \alpha_{0}, w1 → w_{1}), other names of several letters upright (\mathrm{name}); LaTeX's special
/// characters in a name are escaped (a}b → \mathrm{a\}b}).
let private variable (name: string) =
    let stem = name.TrimEnd([| '0' .. '9' |])
    let digits = name.Substring(stem.Length)
    let letters = "αβγδεζηθικλμνξπρστφχψω"
    let body =
        match List.tryFind ((=) stem) greek, stem with
        | Some g, _ -> "\\" + g
        | None, s when s.Length = 1 && letters.Contains s -> "\\" + greek[letters.IndexOf s]
        | None, s when s.Length = 1 -> escape s
        | None, "" -> ""
        | None, s -> $"\\mathrm{{{escape s}}}"
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

/// A piece of the output: text, or an operand still to write.
type private Piece =
    | Text of string
    | Show of Expr

/// The root of `e` as pieces: its own text around its operands.
let private pieces (latex: bool) (e: Expr) : Piece list =
    let parens (inner: Expr) = if latex then [ Text "\\left("; Show inner; Text "\\right)" ] else [ Text "("; Show inner; Text ")" ]
    let wrap (inner: Expr) (least: int) = if precedence inner < least then parens inner else [ Show inner ]
    // Elementwise and matrix products side by side read ambiguously: the inner one is always parenthesised.
    let wrapProduct (inner: Expr) (isOther: Expr -> bool) (least: int) = if isOther inner then parens inner else wrap inner least
    let isElementwise e = match e with Mul _ | Div _ -> true | _ -> false
    let isMatrix e = match e with MatMul _ -> true | _ -> false
    // Operands separated by commas.
    let joined (operands: Expr list) =
        let separator = Text(if latex then ",\\, " else ", ")
        operands |> List.collect (fun o -> [ separator; Show o ]) |> List.tail
    // f(operands…) in plain text, or \name\left(operands…\right) in LaTeX.
    let call (name: string) (operands: Expr list) =
        if latex then Text(name + "\\left(") :: joined operands @ [ Text "\\right)" ] else Text(name + "(") :: joined operands @ [ Text ")" ]
    match e with
    | Const c -> [ Text(number latex c) ]
    | Var(name, _) -> [ Text(if latex then variable name else name) ]
    | Add(a, b) -> wrap a 1 @ Text " + " :: wrap b 2
    | Sub(a, b) -> wrap a 1 @ Text " - " :: wrap b 2
    // A coefficient is written before its factor: 2 (z − 1), not 2 ⊙ (z − 1).
    | Mul(Const c, b) when c >= 0.0 -> Text(number latex c + (if latex then " " else "*")) :: wrapProduct b isMatrix 3
    | Mul(a, b) -> wrapProduct a isMatrix 2 @ Text(if latex then " \\odot " else " .* ") :: wrapProduct b isMatrix 3
    | Div(a, b) -> if latex then [ Text "\\frac{"; Show a; Text "}{"; Show b; Text "}" ] else wrap a 2 @ Text " / " :: wrap b 3
    | MatMul(a, b) -> wrapProduct a isElementwise 2 @ Text(if latex then " " else " @ ") :: wrapProduct b isElementwise 3
    | Neg a -> Text "-" :: wrap a 3
    | Pow(a, p) -> wrap a 5 @ [ Text(if latex then $"^{{{number latex p}}}" else $"^{number latex p}") ]
    | Transpose a -> wrap a 5 @ [ Text(if latex then "^\\top" else "'") ]
    | SumAll a -> if latex then Text "\\sum " :: wrap a 3 else [ Text "sum("; Show a; Text ")" ]
    | OnesLike a -> if latex then [ Text "\\mathbf{1}_{"; Show a; Text "}" ] else [ Text "ones_like("; Show a; Text ")" ]
    | SumAxis(a, k) -> if latex then Text $"\\sum_{{[{k}]}} " :: wrap a 3 else [ Text "sum("; Show a; Text $", axis={k})" ]
    // Shape bookkeeping, not mathematics: a broadcast operand's cotangent is written as the cotangent.
    | ReduceLike(a, _) -> [ Show a ]
    | MatrixExp m -> if latex then [ Text "e^{"; Show m; Text "}" ] else [ Text "expm("; Show m; Text ")" ]
    | ExpFrechet(x, e) -> call (if latex then "L_{\\exp}" else "expm_frechet") [ x; e ]
    | Spread(a, k, like) ->
        if latex then [ Text $"\\operatorname{{spread}}_{{[{k}]}}\\left("; Show a; Text "\\right)" ]
        else [ Text "spread("; Show a; Text $", axis={k}, like="; Show like; Text ")" ]
    | Concat(parts, k) ->
        let items = joined parts
        if latex then Text "\\left[" :: items @ [ Text $"\\right]_{{[{k}]}}" ] else Text "[" :: items @ [ Text $"]_{k}" ]
    | Part(a, _, i, k) ->
        if latex then [ Text "\\left("; Show a; Text $"\\right)_{{[{k}]:{i}}}" ] else [ Text "part("; Show a; Text $", axis={k}, index={i})" ]
    | Psi(_, j, s, d) ->
        let letter = if d < 0 then (if latex then "\\Psi" else "Psi") else (if latex then "\\psi" else "psi")
        let prime = if d = 1 then "'" else ""
        call (if latex then $"{letter}{prime}_{{{j}}}" else $"{letter}{prime}_{j}") [ s ]
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
        call name [ a ]

/// The expression written piece by piece from an explicit stack into one buffer: no depth of nesting overflows the
/// thread's stack, and the text is built in time linear in its length.
let private render (latex: bool) (e: Expr) =
    let output = StringBuilder()
    let pending = Stack<Piece>([ Show e ])
    while pending.Count > 0 do
        match pending.Pop() with
        | Text t -> output.Append t |> ignore
        | Show operand -> for p in List.rev (pieces latex operand) do pending.Push p
    output.ToString()

/// The expression in LaTeX.
let latex (e: Expr) = render true e

/// The expression as plain text.
let text (e: Expr) = render false e
