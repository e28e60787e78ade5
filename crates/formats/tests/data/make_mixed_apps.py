# Real-world-shaped Aegis and andOTP backups mixing TOTP/HOTP with Steam,
# Yandex and mOTP entries; encrypted ones made with Python's hashlib.scrypt /
# pbkdf2_hmac and `cryptography`'s AES-GCM (independent of oathdesk).
import json, os, hashlib, base64
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
def uuid(i): return f"0000000{i}-0000-4000-8000-00000000000{i}"
entries = [
 {"type":"totp","uuid":uuid(1),"name":"alice@contoso.com","issuer":"Contoso","note":"","favorite":False,"icon":None,
  "info":{"secret":"JBSWY3DPEHPK3PXP","algo":"SHA1","digits":6,"period":30},"groups":[]},
 {"type":"steam","uuid":uuid(2),"name":"gamer42","issuer":"Steam","note":"","favorite":False,"icon":None,
  "info":{"secret":"GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ","algo":"SHA1","digits":5,"period":30},"groups":[]},
 {"type":"yandex","uuid":uuid(3),"name":"ivan","issuer":"Yandex","note":"","favorite":False,"icon":None,
  "info":{"secret":"LA2V6KMCGYMWWVEW64RNP3JA3IAAAAAAHTSG4HRZPI","algo":"SHA256","digits":8,"period":30,"pin":"5239"},"groups":[]},
 {"type":"motp","uuid":uuid(4),"name":"vpn","issuer":"Legacy VPN","note":"","favorite":False,"icon":None,
  "info":{"secret":"6DE3WGBLYX3OTRJD","algo":"MD5","digits":6,"period":10,"pin":"1234"},"groups":[]},
 {"type":"hotp","uuid":uuid(5),"name":"bob","issuer":"Fabrikam","note":"","favorite":False,"icon":None,
  "info":{"secret":"KRSXG5CTMVRXEZLUKRSXG5CTMVRXEZLU","algo":"SHA1","digits":6,"counter":7},"groups":[]},
]
db = {"version":3,"entries":entries,"groups":[]}
plain = {"version":1,"header":{"slots":None,"params":None},"db":db}
json.dump(plain, open("aegis_mixed_plain.json","w"), indent=2)
# encrypted, password "test", scrypt N=2^10 (Aegis uses 2^15; small for test speed)
pw=b"test"; master=os.urandom(32); salt=os.urandom(32); n=1024
kek=hashlib.scrypt(pw,salt=salt,n=n,r=8,p=1,dklen=32)
kn=os.urandom(12); wrapped=AESGCM(kek).encrypt(kn,master,None)
dn=os.urandom(12); ct=AESGCM(master).encrypt(dn,json.dumps(db).encode(),None)
enc={"version":1,"header":{"slots":[{"type":1,"uuid":uuid(9),"key":wrapped[:-16].hex(),
  "key_params":{"nonce":kn.hex(),"tag":wrapped[-16:].hex()},"n":n,"r":8,"p":1,"salt":salt.hex(),"repaired":True,"is_backup":False}],
  "params":{"nonce":dn.hex(),"tag":ct[-16:].hex()}},"db":base64.b64encode(ct[:-16]).decode()}
json.dump(enc, open("aegis_mixed_encrypted.json","w"), indent=2)
# andOTP: plain array; encrypted: iterations(4 BE) salt(12) nonce(12) ct||tag, PBKDF2-HMAC-SHA1
a=[{"secret":"JBSWY3DPEHPK3PXP","issuer":"Contoso","label":"alice@contoso.com","digits":6,"type":"TOTP","algorithm":"SHA1","thumbnail":"Default","last_used":0,"used_frequency":0,"period":30,"tags":[]},
   {"secret":"GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ","issuer":"Steam","label":"gamer42","digits":5,"type":"STEAM","algorithm":"SHA1","thumbnail":"Steam","last_used":0,"used_frequency":0,"period":30,"tags":[]},
   {"secret":"KRSXG5CTMVRXEZLUKRSXG5CTMVRXEZLU","issuer":"Fabrikam","label":"bob","digits":6,"type":"HOTP","algorithm":"SHA1","thumbnail":"Default","last_used":0,"used_frequency":0,"counter":7,"tags":[]}]
json.dump(a, open("andotp_mixed_plain.json","w"))
it=1000; s=os.urandom(12); nn=os.urandom(12)
k=hashlib.pbkdf2_hmac("sha1",pw,s,it,32)
open("andotp_mixed_encrypted.bin","wb").write(it.to_bytes(4,"big")+s+nn+AESGCM(k).encrypt(nn,json.dumps(a).encode(),None))
