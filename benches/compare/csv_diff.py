# Compares every CSV of two results folders cell by cell (relative difference of numbers).
# Usage: python3 benches/compare/csv_diff.py results-before results-after
import csv,glob,os,math,sys
a,b=sys.argv[1],sys.argv[2]
for f in sorted(glob.glob(a+'/**/*.csv',recursive=True)):
    g=b+f[len(a):]
    if not os.path.exists(g): print("MISSING",g); continue
    ra=list(csv.reader(open(f))); rb=list(csv.reader(open(g)))
    if len(ra)!=len(rb): print("ROWS DIFFER",f,len(ra),len(rb)); continue
    mx=0; nd=0; where=None
    for x,y in zip(ra,rb):
        for u,v in zip(x,y):
            if u==v: continue
            try:
                fu,fv=float(u),float(v)
                if math.isnan(fu) and math.isnan(fv): continue
                d=abs(fu-fv)/max(abs(fu),abs(fv),1e-300)
                if d>mx: mx=d; where=(x[:3],u,v)
                nd+=1
            except: print("TEXT DIFF",f,u,v); nd+=1
    print(f"{f[len(a)+1:]}: {nd} differing cells, max rel diff {mx:.3e}", where if mx>1e-12 else "")
