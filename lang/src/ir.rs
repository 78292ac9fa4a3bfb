//! The compact, scope-resolved intermediate representation the evaluator runs. Variables are
//! resolved at lowering time to a (depth, slot) pair in the chain of environment frames, to a
//! slot of the global (builtins) frame, or — inside `with` — to a dynamic lookup through the
//! enclosing `with` frames. Attribute names are interned, string parts pre-split.
use crate::source::Span;
use crate::symbol::Symbol;
use std::cell::Cell;
use std::rc::Rc;

pub type ExprRef = Rc<Expr>;

#[derive(Debug)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

/// A binary operator (unary minus is lowered to `0 - x`, `!` has its own node).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Concat,
    Update,
    And,
    Or,
    Implication,
    Equal,
    NotEqual,
    Less,
    LessOrEq,
    More,
    MoreOrEq,
}

impl BinaryOp {
    /// The operator as written in source (used to show `assert` conditions).
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Concat => "++",
            BinaryOp::Update => "//",
            BinaryOp::And => "&&",
            BinaryOp::Or => "||",
            BinaryOp::Implication => "->",
            BinaryOp::Equal => "==",
            BinaryOp::NotEqual => "!=",
            BinaryOp::Less => "<",
            BinaryOp::LessOrEq => "<=",
            BinaryOp::More => ">",
            BinaryOp::MoreOrEq => ">=",
        }
    }
}

/// A string literal. `evaluated` is a slot the evaluator fills with its own value of the
/// literal the first time it evaluates it, so evaluating it again allocates nothing.
pub struct StrLiteral {
    pub text: Rc<str>,
    pub evaluated: std::cell::OnceCell<Rc<dyn std::any::Any>>,
}

impl StrLiteral {
    pub fn new(text: Rc<str>) -> Self {
        StrLiteral {
            text,
            evaluated: std::cell::OnceCell::new(),
        }
    }
}

impl std::fmt::Debug for StrLiteral {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.text)
    }
}

/// One piece of an interpolated string or path.
#[derive(Debug)]
pub enum StrPart {
    Literal(Rc<str>),
    Interpolation(ExprRef),
}

/// An attribute name in a select, `?` or dynamic binding. A static name carries the hint of
/// where its lookups from this place found it.
#[derive(Debug)]
pub enum AttrName {
    Static(Symbol, LookupHint),
    Dynamic(ExprRef),
}

impl AttrName {
    pub fn fixed(name: Symbol) -> AttrName {
        AttrName::Static(name, LookupHint::default())
    }
}

/// The index at which a lookup from one place in the code last found its attribute in a set's
/// entries, which the evaluator tries first the next time. Lookups from one place mostly
/// look in the same set or in sets of one shape (`lib.foo`, `cfg.enable`, a `with` scope), so
/// the index is usually right and the search of the names is skipped; a wrong one costs one
/// comparison of symbols.
#[derive(Debug, Default)]
pub struct LookupHint(Cell<u32>);

impl LookupHint {
    #[inline]
    pub fn get(&self) -> usize {
        self.0.get() as usize
    }

    #[inline]
    pub fn set(&self, index: usize) {
        self.0.set(u32::try_from(index).unwrap_or(u32::MAX));
    }
}

/// A statically named attribute of a set literal.
#[derive(Debug)]
pub struct StaticAttr {
    pub name: Symbol,
    pub value: ExprRef,
    /// Where the attribute is defined (the name), for traces.
    pub span: Span,
}

/// A `${name} = value;` binding.
#[derive(Debug)]
pub struct DynamicAttr {
    pub name: ExprRef,
    pub value: ExprRef,
    pub span: Span,
}

/// An attribute set literal. For `rec` sets a new frame holds one slot per static attribute
/// (in `statics` order) and every value, name and dynamic value is evaluated in that frame.
#[derive(Debug)]
pub struct AttrsExpr {
    pub recursive: bool,
    /// Sorted by name bytes, no duplicates.
    pub statics: Vec<StaticAttr>,
    pub dynamics: Vec<DynamicAttr>,
}

/// A formal parameter of a `{ a, b ? d }:` pattern.
#[derive(Debug)]
pub struct Formal {
    pub name: Symbol,
    pub default: Option<ExprRef>,
    pub span: Span,
    /// Where calls last found the formal in their argument set.
    pub hint: LookupHint,
}

#[derive(Debug)]
pub enum Param {
    /// `x: body` — the argument is slot 0.
    Ident(Symbol),
    /// `{ a, b ? 1, ... } @ args: body` — formal `i` is slot `i`, the `@` name (if any) is
    /// the slot after the last formal. Formals are kept in source order.
    Pattern {
        formals: Vec<Formal>,
        ellipsis: bool,
        bind: Option<Symbol>,
    },
}

#[derive(Debug)]
pub struct Lambda {
    /// The name it is bound to when it is the direct value of a `let` binding or attribute
    /// (`'f' at …` in messages), as in Nix.
    pub name: Option<Symbol>,
    pub param: Param,
    pub body: ExprRef,
    /// Number of slots of the frame a call creates.
    pub frame_size: u32,
    /// The lambda's position (its parameter), used in "anonymous function at …" messages.
    pub span: Span,
}

/// How a path literal is anchored.
#[derive(Debug)]
pub enum PathExpr {
    /// An absolute path, already resolved against the file's directory and canonicalised.
    Literal(Rc<str>),
    /// A path with interpolations; the first literal part is already absolute.
    Interpolated(Vec<StrPart>),
    /// `<name/rest>`: looked up in the search path.
    Search(Rc<str>),
}

#[derive(Debug)]
pub enum ExprKind {
    Int(i64),
    Float(f64),
    Str(StrLiteral),
    Interpolated(Vec<StrPart>),
    Path(PathExpr),
    /// A variable bound `depth` frames up, in `slot`.
    Local {
        depth: u32,
        slot: u32,
        name: Symbol,
    },
    /// A slot of the global frame (builtins, `true`, `map`, …).
    Global {
        slot: u32,
        name: Symbol,
    },
    /// A variable only a `with` can provide: `with_depths` are the depths of the enclosing
    /// `with` frames, innermost first.
    WithVar {
        name: Symbol,
        with_depths: Rc<[u32]>,
        hint: LookupHint,
    },
    Attrs(Rc<AttrsExpr>),
    List(Vec<ExprRef>),
    Select {
        subject: ExprRef,
        path: Vec<AttrName>,
        default: Option<ExprRef>,
    },
    HasAttr {
        subject: ExprRef,
        path: Vec<AttrName>,
    },
    Lambda(Rc<Lambda>),
    Apply {
        function: ExprRef,
        argument: ExprRef,
    },
    /// `let`: a new frame with one slot per binding (in `bindings` order).
    Let {
        bindings: Vec<ExprRef>,
        body: ExprRef,
    },
    /// `with`: a new one-slot frame holding the namespace.
    With {
        namespace: ExprRef,
        body: ExprRef,
    },
    If {
        condition: ExprRef,
        then_branch: ExprRef,
        else_branch: ExprRef,
    },
    Assert {
        condition: ExprRef,
        body: ExprRef,
        /// The condition as Nix shows it in "assertion '…' failed".
        shown: Rc<str>,
    },
    Binary {
        op: BinaryOp,
        lhs: ExprRef,
        rhs: ExprRef,
    },
    Not(ExprRef),
    /// `__curPos`: `{ file, line, column }` of this node.
    CurPos,
}
