# Makes a draft-ietf-keyprov-pskc-02 shaped file: Device elements, KeyAlgorithm
# attributes, Usage/ResponseFormat, MACAlgorithm, an AES-128-CBC encrypted
# secret with its ValueMAC (HMAC-SHA1 under the encryption key, over IV || ciphertext).
import base64, hmac, hashlib
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives import padding
key = bytes.fromhex("12345678901234567890123456789012")
secret = b"12345678901234567890"
iv = bytes(range(16))
p = padding.PKCS7(128).padder(); data = p.update(secret) + p.finalize()
enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
ct = iv + enc.update(data) + enc.finalize()
mac = hmac.new(key, ct, hashlib.sha1).digest()
xml = f'''<?xml version="1.0" encoding="UTF-8"?>
<!-- draft-ietf-keyprov-pskc-02 form (2008): Device, KeyAlgorithm, Usage,
     MACAlgorithm. Pre-shared key 12345678901234567890123456789012 (hex);
     the TOTP secret is the RFC 6238 SHA-1 key. Made with Python cryptography. -->
<KeyContainer Version="1.0" xmlns="urn:ietf:params:xml:ns:keyprov:pskc:1.0"
    xmlns:ds="http://www.w3.org/2000/09/xmldsig#"
    xmlns:xenc="http://www.w3.org/2001/04/xmlenc#">
  <EncryptionKey>
    <ds:KeyName>Pre-shared-key</ds:KeyName>
  </EncryptionKey>
  <MACAlgorithm>http://www.w3.org/2000/09/xmldsig#hmac-sha1</MACAlgorithm>
  <Device>
    <DeviceInfo>
      <Manufacturer>TokenVendorAcme</Manufacturer>
      <SerialNo>2100012345</SerialNo>
    </DeviceInfo>
    <Key KeyId="2100012345" KeyAlgorithm="urn:ietf:params:xml:ns:keyprov:pskc#totp">
      <Issuer>Contoso</Issuer>
      <Usage OTP="true">
        <ResponseFormat Length="8" Encoding="DECIMAL"/>
      </Usage>
      <Data>
        <Secret>
          <EncryptedValue>
            <xenc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/>
            <xenc:CipherData>
              <xenc:CipherValue>{base64.b64encode(ct).decode()}</xenc:CipherValue>
            </xenc:CipherData>
          </EncryptedValue>
          <ValueMAC>{base64.b64encode(mac).decode()}</ValueMAC>
        </Secret>
        <TimeInterval>
          <PlainValue>30</PlainValue>
        </TimeInterval>
      </Data>
    </Key>
  </Device>
  <Device>
    <DeviceInfo>
      <Manufacturer>TokenVendorAcme</Manufacturer>
      <SerialNo>2100012346</SerialNo>
    </DeviceInfo>
    <Key KeyId="2100012346" KeyAlgorithm="http://www.ietf.org/keyprov/pskc#hotp">
      <Issuer>Contoso</Issuer>
      <Usage OTP="true">
        <ResponseFormat Length="6" Encoding="DECIMAL"/>
      </Usage>
      <Data>
        <Secret>
          <PlainValue>MTIzNDU2Nzg5MDEyMzQ1Njc4OTA=</PlainValue>
        </Secret>
        <Counter>
          <PlainValue>5</PlainValue>
        </Counter>
      </Data>
    </Key>
  </Device>
</KeyContainer>
'''
open("pskc_draft_encrypted.pskcxml","w").write(xml)
