" bnni model files (.bnn) use the bnn syntax (editors/vim/syntax/bnn.vim).
autocmd BufRead,BufNewFile *.bnn setfiletype bnn
