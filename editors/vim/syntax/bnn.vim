" Vim syntax file for bnni's model language (bnn(5), docs/language.md).
" Installed to share/vim/vimfiles/syntax/bnn.vim with editors/vim/ftdetect/bnn.vim.

if exists("b:current_syntax")
  finish
endif

syn keyword bnnStatement model data optimizer schedule loss epochs seed checkpoint network block set
syn keyword bnnRepeat repeat residual input
syn keyword bnnBoolean true false
syn keyword bnnLayer conv2d dense batchnorm sigmoid relu tanh avgpool maxpool flatten dropout
syn keyword bnnKind fashion_mnist mnist idx hdf5 csv images cifar10 augment sgd adam constant step cosine cross_entropy
" Arguments that are keywords too: the checkpoint's options (outside parentheses) and the new layer arguments.
syn keyword bnnOption keep every init affine sync validation
syn match bnnComment "#.*$" contains=@Spell
syn region bnnString start=+"+ skip=+\\.+ end=+"+ oneline contains=bnnEscape
syn match bnnEscape +\\[\\"ntr]+ contained
syn match bnnShape "\<\d\+\(x\d\+\)\+\>"
syn match bnnNumber "\<\d\+\>"
syn match bnnNumber "\<\d\+\.\d*\([eE][+-]\=\d\+\)\=\>"
syn match bnnNumber "\.\d\+\([eE][+-]\=\d\+\)\=\>"
syn match bnnNumber "\<\d\+[eE][+-]\=\d\+\>"
syn match bnnKey "\<\h\w*\ze\s*=" contained containedin=bnnArgs
syn region bnnArgs matchgroup=bnnParen start="(" end=")" transparent contains=ALLBUT,bnnEscape
syn match bnnLabel "^\s*\zs\h\w*\ze\s*:"

hi def link bnnStatement Statement
hi def link bnnRepeat Repeat
hi def link bnnBoolean Boolean
hi def link bnnLayer Function
hi def link bnnKind Type
hi def link bnnComment Comment
hi def link bnnString String
hi def link bnnEscape SpecialChar
hi def link bnnShape Number
hi def link bnnNumber Number
hi def link bnnKey Identifier
hi def link bnnOption Identifier
hi def link bnnLabel Label

let b:current_syntax = "bnn"
